"""The declaration shared by the in-memory supervised tasks (trainables/tasks/supervised.py), torch-free: the
recipe's options, what a pack's members may differ in, and the step count from the training set's size."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from methods.config import option
from trainables.tasks.options import TaskSpec


@dataclasses.dataclass(frozen=True)
class RecipeOptions:
    epochs: int = option(50, "training epochs", "[1, 1e6]")
    batch_size: int = option(128, "minibatch size; the last partial batch of an epoch is dropped", "[1, 1e7]")
    optimizer: Literal["sgd", "adam"] = option("sgd", "SGD with momentum, or Adam")
    lr: float = option(0.1, "learning rate", "(0, 1000]")
    lr_schedule: Literal["cosine", "multistep", "constant"] = option(
        "cosine", "per-epoch schedule: cosine to 0; x0.1 at 30% and 60% of epochs; or constant"
    )
    momentum: float = option(0.9, "SGD momentum (ignored by Adam)", "[0, 1)")
    weight_decay: float = option(5e-4, "L2 weight decay on the model's parameters (never on a method's own)", "[0, 10]")
    eval_every: int = option(390, "steps between evaluations (each one also checkpoints)", "[1, 1e15]")

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


class SupervisedSpec(TaskSpec):
    """Declares `train_size` (the training examples its `train_data()` returns, checked when a task is built) and
    whether it packs (`packable`: its implementation has a stacked model, `Packed`)."""

    Options: ClassVar[type[RecipeOptions]]
    train_size: ClassVar[int]
    pack_options = frozenset({"lr", "lr_schedule", "momentum", "weight_decay"})
    facts = (*TaskSpec.facts, "train_size")

    @classmethod
    def total_steps_for(cls, options: RecipeOptions) -> int:
        return options.epochs * (cls.train_size // options.batch_size)

    @classmethod
    def lengthened(cls, options: RecipeOptions, factor: float) -> RecipeOptions:
        """More epochs; the per-epoch schedules (cosine, steps at 30% / 60%) stretch with them."""
        return dataclasses.replace(options, epochs=max(1, round(options.epochs * factor)))

    @classmethod
    def pack_refusal(cls, options: RecipeOptions) -> str | None:
        if not cls.packable:
            return f"task {cls.name} has no stacked model"
        if options.optimizer != "sgd":
            return f"optimizer {options.optimizer} runs unpacked (the stacked optimizer is SGD)"
        return None
