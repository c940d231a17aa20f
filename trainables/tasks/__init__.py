"""The task contract: data + model + recipe + evaluation metric. The training loop is shared by all tasks."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

_TASKS: dict[str, type[Task]] = {}


class Task:
    """A task builds everything a trial trains, deterministically from (options, seed).

    `batch(step)` must depend on (seed, step) only, so a resumed trial sees the same data as an uninterrupted
    one without saving any data-loader state. `learning_rate(step)` is likewise stateless.
    """

    name: ClassVar[str]
    Options: ClassVar[type]
    metric: ClassVar[str]
    mode: ClassVar[str] = "max"  # whether a higher metric is better ("max") or a lower one ("min")
    max_workers: ClassVar[int] = 1
    # packing (trainables/packing/): the options in which the members of one pack may differ; every other
    # option (and the step count) is the pack's shape, shared by all its members
    pack_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, options: Any, seed: int, device: torch.device):
        self.options, self.seed, self.device = options, seed, device

    @classmethod
    def total_steps_for(cls, options: Any) -> int:
        raise NotImplementedError

    @classmethod
    def lengthened(cls, options: Any, factor: float) -> Any:
        """These options with training `factor` times as long, its schedule stretched with it (scratch-b)."""
        raise ValueError(f"task {cls.name} does not know how to train {factor:g} times as long")

    @classmethod
    def pack_refusal(cls, options: Any) -> str | None:
        """Why trials of this task with these options cannot run packed, or None if they can."""
        return f"task {cls.name} has no stacked model"

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


def register(cls: type[Task]) -> type[Task]:
    _TASKS[cls.name] = cls
    return cls


def get(name: str) -> type[Task]:
    _load_builtin()
    try:
        return _TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; registered: {', '.join(names())}") from None


def names() -> list[str]:
    _load_builtin()
    return sorted(_TASKS)


def _load_builtin() -> None:
    # importing a task's module registers it
    from trainables.tasks import bars, cubist  # noqa: F401
    from trainables.tasks.resnet import task as resnet_task  # noqa: F401
    from trainables.tasks.transformer import task as transformer_task  # noqa: F401
