"""Methods by name: a torch-free declaration per method (methods/config.py), its implementation imported on demand.

`declared(name)` is what the spec, the planner and `sparsity methods` need (config class and facts, no torch);
`get(name)` imports the implementation module the declaration names and returns its Sparsifier class, which
`register` gave the declaration's facts (so they are stated once, in the declaration).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

_DECLARED: dict[str, Declaration] = {}
_IMPLEMENTED: dict[str, type] = {}


@dataclasses.dataclass(frozen=True)
class Declaration:
    """What the spec and the planner know of a method, without importing it."""

    name: str
    Config: type  # its MethodConfig dataclass
    implementation: str  # "module:Class" of its Sparsifier
    targets_sparsity: bool = True  # False: the target is ignored (dense, fixed masks) or there is none (VD, L0)
    learns_sparsity: bool = False  # sparsity is an outcome (VD, L0): its runs have no target
    packable: bool = False  # can run K members on a stacked model (methods/base.py's docstring)
    # columns that evaluation variants add to the results, e.g. {"threshold": "float"} for VD
    variant_columns: dict[str, str] = dataclasses.field(default_factory=dict)
    summary: str = ""  # one line for `sparsity methods`: what it is, whose it is, its name in a study's code


FACTS = tuple(f.name for f in dataclasses.fields(Declaration) if f.name not in ("name", "implementation"))


def declare(name: str, config: type, implementation: str, **facts: Any) -> Declaration:
    """Declare method `name`: its config dataclass, its implementation ("module:Class") and its facts."""
    if name in _DECLARED:
        raise ValueError(f"method {name!r} is declared twice")
    _DECLARED[name] = Declaration(name, config, implementation, **facts)
    return _DECLARED[name]


def register(cls: type) -> type:
    """Class decorator of a method's implementation: the Sparsifier declared under `cls.name`. It receives the
    declaration's config class and facts, and must not state them again."""
    decl = declared(cls.name)
    if decl.implementation != f"{cls.__module__}:{cls.__qualname__}":
        raise TypeError(
            f"method {cls.name!r} is declared as implemented by {decl.implementation}, not {cls.__qualname__}"
        )
    if cls.name in _IMPLEMENTED:
        raise ValueError(f"method {cls.name!r} is registered twice")
    repeated = [fact for fact in FACTS if fact in vars(cls)]
    if repeated:
        raise TypeError(f"{cls.__qualname__} repeats {', '.join(repeated)}: they come from its declaration")
    for fact in FACTS:
        value = getattr(decl, fact)
        setattr(cls, fact, dict(value) if isinstance(value, dict) else value)
    cls.declaration = decl
    _IMPLEMENTED[cls.name] = cls
    return cls


def declared(name: str) -> Declaration:
    """The declaration of method `name` (torch-free)."""
    try:
        return _DECLARED[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(names())}") from None


def get(name: str) -> type:
    """The sparsifier class registered as `name` (imports its implementation, and so torch)."""
    decl = declared(name)
    if name not in _IMPLEMENTED:
        module = decl.implementation.partition(":")[0]
        importlib.import_module(module)
        if name not in _IMPLEMENTED:
            raise RuntimeError(f"{module} does not register method {name!r} (@register on {decl.implementation})")
    return _IMPLEMENTED[name]


def names() -> list[str]:
    return sorted(_DECLARED)
