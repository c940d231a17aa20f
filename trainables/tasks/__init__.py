"""Tasks by name: a torch-free declaration per task, its implementation imported on demand.

- declaration (`<task>_options.py`, `<task>/options.py`): a `TaskSpec` subclass (trainables/tasks/options.py)
  under `@declare`, with `name`, `implementation = "module:Class"`, `Options`, `metric`, ... and the option-only
  classmethods. `declared(name)` returns it: the spec, the planner and `sparsity tasks` need nothing else.
- implementation (`<task>.py`, `<task>/task.py`): a subclass of the declaration and of `Task`
  (trainables/tasks/base.py) under `@register`, adding data, model and recipe. `get(name)` imports it.

Adding a task: (1) declare it in a torch-free options module (its Options fields made with `methods.config.option`,
every number with its range, e.g. `option(50, "training epochs", "[1, 1e6]")`) and list that module in
`_DECLARATIONS`;
(2) implement it, subclassing the declaration, without restating what the declaration says.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainables.tasks.base import Task
    from trainables.tasks.options import TaskSpec

# the modules that declare the built-in tasks (torch-free)
_DECLARATIONS = (
    "trainables.tasks.bars_options",
    "trainables.tasks.cubist_options",
    "trainables.tasks.resnet.options",
    "trainables.tasks.transformer.options",
)
_DECLARED: dict[str, type[TaskSpec]] = {}
_IMPLEMENTED: dict[str, type[Task]] = {}


def declare(cls: type[TaskSpec]) -> type[TaskSpec]:
    """Class decorator of a task's declaration."""
    if _DECLARED.get(cls.name, cls) is not cls:
        raise ValueError(f"task {cls.name!r} is declared twice")
    _DECLARED[cls.name] = cls
    return cls


def register(cls: type[Task]) -> type[Task]:
    """Class decorator of a task's implementation: a subclass of its declaration that restates none of it."""
    spec = declared(cls.name)
    if not issubclass(cls, spec) or spec.implementation != f"{cls.__module__}:{cls.__qualname__}":
        raise TypeError(f"task {cls.name!r} is declared as implemented by {spec.implementation} (a subclass of it)")
    repeated = [fact for fact in cls.facts if fact in vars(cls)]
    if repeated:
        raise TypeError(f"{cls.__qualname__} repeats {', '.join(repeated)}: they come from its declaration")
    _IMPLEMENTED[cls.name] = cls
    return cls


def declared(name: str) -> type[TaskSpec]:
    """The declaration of task `name` (torch-free)."""
    _load_declarations()
    try:
        return _DECLARED[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; registered: {', '.join(names())}") from None


def get(name: str) -> type[Task]:
    """The task class registered as `name` (imports its implementation, and so torch)."""
    spec = declared(name)
    if name not in _IMPLEMENTED:
        module = spec.implementation.partition(":")[0]
        importlib.import_module(module)
        if name not in _IMPLEMENTED:
            raise RuntimeError(f"{module} does not register task {name!r} (@register on {spec.implementation})")
    return _IMPLEMENTED[name]


def names() -> list[str]:
    _load_declarations()
    return sorted(_DECLARED)


def _load_declarations() -> None:
    for module in _DECLARATIONS:  # importing a declaration's module declares it
        importlib.import_module(module)


def __getattr__(name: str) -> Any:
    # the torch parts, imported only when asked for (PEP 562): trainables.tasks.base is their home
    if name in ("Task", "world", "param_groups"):
        from trainables.tasks import base

        return getattr(base, name)
    raise AttributeError(f"module 'trainables.tasks' has no attribute {name!r}")
