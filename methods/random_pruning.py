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
        per_member = []
        for _, _, seed in self.members:  # each member draws exactly what it would draw alone
            gen = torch.Generator().manual_seed(seed)
            per_member.append({n: torch.rand(self.member_shape(p), generator=gen) for n, p in self.params.items()})
        self._scores = {
            n: (torch.stack([m[n] for m in per_member]) if self.stacked else per_member[0][n]).to(p.device)
            for n, p in self.params.items()
        }

    def scores(self, name: str, param: torch.Tensor) -> torch.Tensor:
        return self._scores[name]
