"""Sparsifiers: one small class per method behind the hooks in `methods.base`, registered by name.

A method is two things, kept apart so that the spec, `sparsity plan` and `sparsity methods` never import torch:

- its declaration, torch-free (methods/config.py): the config dataclass and `declare(name, Config,
  "module:Class", targets_sparsity=..., learns_sparsity=..., packable=..., variant_columns=...)`;
- its implementation (methods/<module>.py): a `Sparsifier` subclass with `name = ...` under `@register`, which
  gives it the declaration's Config and facts (it must not repeat them).

>>> import methods
>>> methods.names()
['dense', 'fixed_mask', 'l0', 'magnitude', 'random', 'variational_dropout']
>>> methods.declared("magnitude").packable  # no torch imported yet
True
>>> cls = methods.get("magnitude")  # imports methods/magnitude.py
>>> sparsifier = cls(cls.Config(begin_step=100, end_step=900), target=0.9, seed=0)

Adding a method (e.g. SNIP):
1. declare it: in methods/config.py, its config dataclass (fields made with `option`: a typed default, help, and
   for every number its range, e.g. `option(0.1, "learning rate", "(0, 1000]")`, which the spec checks before
   anything runs; tests/test_spec_input.py refuses a number without one; checks across fields in
   `__post_init__`) and `declare("snip", SnipConfig, "methods.snip:Snip", ...)`;
2. implement it: methods/snip.py with `@register class Snip(Sparsifier): name = "snip"` overriding the hooks it
   needs; then add its config to tests/test_contract.py's CONFIGS, which checks the contract for every method.
The training loop and sweep/ need no change.
"""

from typing import Any

from methods import schedules
from methods.config import MethodConfig, option  # declares every method
from methods.registry import Declaration, declared, get, names, register

__all__ = [
    "Declaration",
    "InitContext",
    "MethodConfig",
    "Sparsifier",
    "declared",
    "get",
    "names",
    "option",
    "prunable_parameters",
    "register",
    "schedules",
]


def __getattr__(name: str) -> Any:
    # the torch parts, imported only when asked for (PEP 562)
    if name in ("Sparsifier", "prunable_parameters", "InitContext"):
        from methods import base

        return getattr(base, name)
    raise AttributeError(f"module 'methods' has no attribute {name!r}")
