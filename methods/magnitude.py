"""Magnitude pruning (Zhu & Gupta 2017) as in the State of Sparsity: per-tensor, smallest |w| pruned first."""

from __future__ import annotations

import torch

from methods.gradual import GradualPruner
from methods.registry import register


@register
class Magnitude(GradualPruner):
    name = "magnitude"

    def scores(self, name: str, param: torch.Tensor) -> torch.Tensor:
        return param.detach().abs()
