"""Methods by name."""

from __future__ import annotations

from methods.base import Sparsifier

_METHODS: dict[str, type[Sparsifier]] = {}


def register(cls: type[Sparsifier]) -> type[Sparsifier]:
    if cls.name in _METHODS:
        raise ValueError(f"method {cls.name!r} is registered twice")
    _METHODS[cls.name] = cls
    return cls


def get(name: str) -> type[Sparsifier]:
    """The sparsifier class registered as `name`."""
    try:
        return _METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(names())}") from None


def names() -> list[str]:
    return sorted(_METHODS)
