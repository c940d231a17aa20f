"""Sparsifiers: one small class per method behind the hooks in `methods.base`, registered by name.

>>> import methods
>>> methods.names()
['dense', 'fixed_mask', 'l0', 'magnitude', 'random', 'variational_dropout']
>>> cls = methods.get("magnitude")
>>> sparsifier = cls(cls.Config(begin_step=100, end_step=900), target=0.9, seed=0)
"""

from methods import dense, fixed, l0, magnitude, random_pruning, schedules, variational_dropout  # noqa: F401 (registers)
from methods.base import MethodConfig, Sparsifier, prunable_parameters
from methods.registry import get, names, register

__all__ = ["MethodConfig", "Sparsifier", "get", "names", "prunable_parameters", "register", "schedules"]
