"""The task contract: data + model + recipe + evaluation metric. The training loop is shared by all tasks."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainables.tasks.options import TaskSpec


class Task(TaskSpec):
    """A task builds everything a trial trains, deterministically from (options, seed). Its name, options,
    metric and option-only facts come from its declaration (trainables/tasks/options.py), which it subclasses.

    `batch(step)` must depend on (seed, step) only, so a resumed trial sees the same data as an uninterrupted
    one without saving any data-loader state. `learning_rate(step)` is likewise stateless.
    """

    def __init__(self, options: Any, seed: int, device: torch.device):
        self.options, self.seed, self.device = options, seed, device

    @classmethod
    def packed(cls, members: list[tuple[Any, int]], device: torch.device) -> Any:
        """The stacked form of K trials of this task, one (options, seed) each (see tasks/supervised.py's
        PackedSupervised for the interface the pack's loop uses)."""
        raise NotImplementedError

    @property
    def total_steps(self) -> int:
        return self.total_steps_for(self.options)

    @property
    def eval_every(self) -> int:
        return self.options.eval_every

    @property
    def stored_init(self) -> bool:
        """Whether the initial weights are loaded from a stored initialisation rather than drawn (a method may
        re-initialise drawn weights only: SNIP and GraSP in the Sparsest-Models study)."""
        return False

    @property
    def micro_batches(self) -> int:
        """Gradient accumulation: micro-batches per optimizer step (the batch is split evenly)."""
        return 1

    @property
    def micro_batch_size(self) -> int:
        return self.options.batch_size // self.micro_batches

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def build_optimizer(self, model: nn.Module, no_decay: list[nn.Parameter] = ()) -> torch.optim.Optimizer:
        """The recipe's optimizer over all of `model`'s parameters; `no_decay` ones get no weight decay."""
        raise NotImplementedError

    def learning_rate(self, step: int) -> float:
        raise NotImplementedError

    def batch(self, step: int) -> Any:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, model: nn.Module) -> float | dict[str, float]:
        """The metric's value, or several metrics by name (the task's `metric` among them, the primary one that
        tables and Tune use by default; each one becomes its own result rows)."""
        raise NotImplementedError

    def metric_details(self) -> dict[str, str]:
        """How a metric was computed, by metric name (e.g. sacreBLEU's signature); stored beside its values."""
        return {}


def world() -> tuple[int, int]:
    """(rank, world size) of this data-parallel process; (0, 1) outside torch.distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def param_groups(model: nn.Module, weight_decay: float, no_decay: list[nn.Parameter] = ()) -> list[dict]:
    skip = {id(p) for p in no_decay}
    groups = [{"params": [p for p in model.parameters() if id(p) not in skip], "weight_decay": weight_decay}]
    if skip:
        groups.append({"params": [p for p in model.parameters() if id(p) in skip], "weight_decay": 0.0})
    return groups
