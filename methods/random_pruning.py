"""Random pruning: the magnitude schedule with seeded random scores drawn once, so masks are nested."""

from __future__ import annotations

import torch

from methods.gradual import GradualPruner
from methods.registry import register


@register
class Random(GradualPruner):
    name = "random"

    def prepare(self, model):
        super().prepare(model)
        gen = torch.Generator().manual_seed(self.seed)
        self._scores = {n: torch.rand(p.shape, generator=gen).to(p.device) for n, p in self.params.items()}

    def scores(self, name: str, param: torch.Tensor) -> torch.Tensor:
        return self._scores[name]
