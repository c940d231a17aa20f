"""Iterative magnitude pruning with rewinding to the initial weights (Frankle & Carbin's lottery ticket, open_lth),
as the Sparsest-Models study's `imp_LTH` runs it: `rounds` trainings of the task's recipe; after round k of
R - 1 prunings, global magnitude pruning of the trained weights to int(N (F/N)^(k/(R-1))) (the study: 5 rounds,
e.g. N = 560, F = 20: 243, 105, 46, 20), keeping those strictly above the threshold (so F - 1 at the end); the
loop then rewinds the weights to step 0's and starts a fresh optimizer and LR schedule (methods/base.py).
"""

from __future__ import annotations

import torch

from methods.global_prune import GlobalPruner, strictly_above
from methods.registry import register


@register
class IMPRewind(GlobalPruner):
    name = "imp_rewind"

    def prepare(self, model) -> None:
        super().prepare(model)
        if len({config.rounds for config, _, _ in self.members}) > 1:
            raise ValueError("members of one pack must train the same number of rounds")

    @torch.no_grad()
    def end_round(self, round: int, step: int) -> None:
        total, prunings = self.total_weights(), self.rounds - 1
        index = [total - int(total * (keep / total) ** (round / prunings)) for keep in self.keep]
        self.set_rows(list(range(len(self.members))), strictly_above(self.weight_rows().abs(), index))
