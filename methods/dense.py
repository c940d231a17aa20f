"""The dense baseline: no pruning. Sweeps run it once per seed, at target 0."""

from __future__ import annotations

from methods.base import Sparsifier
from methods.registry import register


@register
class Dense(Sparsifier):
    name = "dense"
