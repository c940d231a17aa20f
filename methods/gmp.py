"""Gradual global magnitude pruning on the cubic schedule, as the Sparsest-Models study's `imp` runs it.

Every `frequency` steps from step `frequency` on, the target is int(F + (N - F)(1 - t/T)^3) weights and the mask
keeps the weights strictly above the sorted |w| at index N - target (so one fewer: the study's threshold). Past
T the cube is negative, so the last events keep F - 2 (papers/sparsest-models.md §4). No rewinding.
"""

from __future__ import annotations

import torch

from methods.global_prune import GlobalPruner, strictly_above
from methods.registry import register


@register
class GMP(GlobalPruner):
    name = "gmp"

    def after_step(self, step: int) -> None:
        due = [k for k, (config, _, _) in enumerate(self.members) if step % config.frequency == 0]
        if due:
            self.prune(step, due)
        self.apply_masks()

    @torch.no_grad()
    def prune(self, step: int, due: list[int]) -> None:
        total = self.total_weights()
        index = []
        for k in due:
            config, final = self.members[k][0], self.keep[k]
            # past T the cube goes negative (the study's last two events: F - 2); never below one weight
            target = max(int(final + (total - final) * (1 - step / config.end_step) ** 3), 1)
            index.append(total - target)
        scores = self.weight_rows().abs()[torch.tensor(due, device=self.device())]
        self.set_rows(due, strictly_above(scores, index))
