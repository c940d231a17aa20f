"""Training with masks fixed from the start: the children of a reinit / lottery-ticket stage.

The masks come from elsewhere (a parent trial's final masks, handed over with `set_masks`); nothing is ever
pruned or regrown, and pruned weights stay exactly zero (the base class's `after_step`)."""

from __future__ import annotations

from methods.base import Sparsifier
from methods.registry import register


@register
class FixedMask(Sparsifier):
    name = "fixed_mask"
