"""In-memory supervised tasks: a recipe (optimizer, per-epoch LR schedule, shuffled minibatches) shared by the
small tasks. Batches and learning rates are pure functions of (seed, step), so resuming needs no loader state."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
from torch import nn

from methods.base import option
from trainables.tasks import Task, param_groups


@dataclasses.dataclass(frozen=True)
class RecipeOptions:
    epochs: int = option(50, "training epochs")
    batch_size: int = option(128, "minibatch size; the last partial batch of an epoch is dropped")
    optimizer: Literal["sgd", "adam"] = option("sgd", "SGD with momentum, or Adam")
    lr: float = option(0.1, "learning rate")
    lr_schedule: Literal["cosine", "multistep", "constant"] = option(
        "cosine", "per-epoch schedule: cosine to 0; x0.1 at 30% and 60% of epochs; or constant"
    )
    momentum: float = option(0.9, "SGD momentum (ignored by Adam)")
    weight_decay: float = option(5e-4, "L2 weight decay on the model's parameters (never on a method's own)")
    eval_every: int = option(390, "steps between evaluations (each one also checkpoints)")

    def __post_init__(self):
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")


class SupervisedTask(Task):
    """Subclasses provide `train_data()` -> (x, y) as a classmethod, the model, the loss and `evaluate`."""

    def __init__(self, options: RecipeOptions, seed: int, device: torch.device):
        super().__init__(options, seed, device)
        x, y = self.train_data()
        self.x, self.y = x.to(device), y.to(device)
        self.steps_per_epoch = len(x) // options.batch_size

    @classmethod
    def train_data(cls) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @classmethod
    def total_steps_for(cls, options: RecipeOptions) -> int:
        return options.epochs * (len(cls.train_data()[0]) // options.batch_size)

    @classmethod
    def lengthened(cls, options: RecipeOptions, factor: float) -> RecipeOptions:
        """More epochs; the per-epoch schedules (cosine, steps at 30% / 60%) stretch with them."""
        return dataclasses.replace(options, epochs=max(1, round(options.epochs * factor)))

    def build_optimizer(self, model: nn.Module, no_decay: list[nn.Parameter] = ()) -> torch.optim.Optimizer:
        o = self.options
        groups = param_groups(model, o.weight_decay, no_decay)
        if o.optimizer == "adam":
            return torch.optim.Adam(groups, lr=o.lr)
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)

    def learning_rate(self, step: int) -> float:
        """The rate for optimizer step `step` (1-based), stepped per epoch like torch's epoch schedulers."""
        o, epoch = self.options, (step - 1) // self.steps_per_epoch
        if o.lr_schedule == "cosine":
            return o.lr * 0.5 * (1 + math.cos(math.pi * epoch / o.epochs))
        if o.lr_schedule == "multistep":
            milestones = (math.ceil(0.3 * o.epochs), math.ceil(0.6 * o.epochs))
            return o.lr * 0.1 ** sum(epoch >= m for m in milestones)
        return o.lr

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = divmod(step - 1, self.steps_per_epoch)
        order = self._permutation(epoch)
        idx = order[index * self.options.batch_size : (index + 1) * self.options.batch_size]
        return self.x[idx], self.y[idx]

    def _permutation(self, epoch: int) -> torch.Tensor:
        if getattr(self, "_perm_epoch", None) != epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(len(self.x), generator=gen).to(self.device), epoch
        return self._perm
