"""What a task *is*, without torch: the declaration every task's implementation is built on.

A task's declaration (`<task>_options.py` or `<task>/options.py`) is a `TaskSpec` subclass under `@declare`: its
options dataclass, its metric, what may vary inside a pack, and the facts that follow from the options alone
(`total_steps_for`, `lengthened`, `pack_refusal`). The spec, the planner and `sparsity tasks` read only these;
the implementation (`<task>.py`, `<task>/task.py`) subclasses the declaration and `Task` (trainables/tasks/base.py)
and adds data, model and recipe, with torch.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TaskSpec:
    """A task's declaration: everything about it that needs no torch (class attributes and classmethods)."""

    name: ClassVar[str]
    implementation: ClassVar[str]  # "module:Class" of its Task
    Options: ClassVar[type]
    metric: ClassVar[str]
    mode: ClassVar[str] = "max"  # whether a higher metric is better ("max") or a lower one ("min")
    max_workers: ClassVar[int] = 1
    # packing (trainables/packing/): the options in which the members of one pack may differ; every other
    # option (and the step count) is the pack's shape, shared by all its members
    pack_options: ClassVar[frozenset[str]] = frozenset()
    packable: ClassVar[bool] = False  # the implementation has a stacked form (`Task.packed`)
    # what the declaration states and its implementation must not override
    facts: ClassVar[tuple[str, ...]] = (
        "name",
        "implementation",
        "Options",
        "metric",
        "mode",
        "max_workers",
        "pack_options",
        "packable",
        "total_steps_for",
        "lengthened",
        "pack_refusal",
        "prunable_weights_for",
        "chain_for",
    )

    @classmethod
    def total_steps_for(cls, options: Any) -> int:
        raise NotImplementedError

    @classmethod
    def lengthened(cls, options: Any, factor: float) -> Any:
        """These options with training `factor` times as long, its schedule stretched with it (scratch-b)."""
        raise ValueError(f"task {cls.name} does not know how to train {factor:g} times as long")

    @classmethod
    def prunable_weights_for(cls, options: Any) -> int | None:
        """How many prunable weights the model has with these options (a spec's `nnz` targets are counted
        against it), or None if the declaration cannot say without building the model."""
        return None

    @classmethod
    def chain_for(cls, options: Any) -> tuple[int, ...] | None:
        """The neurons per layer (inputs, hidden layers, outputs) if the model is a chain of linear layers with
        these options (the combinatorial search masks such a chain), else None."""
        return None

    @classmethod
    def pack_refusal(cls, options: Any) -> str | None:
        """Why trials of this task with these options cannot run packed, or None if they can."""
        return None if cls.packable else f"task {cls.name} has no stacked model"
