"""Iterative SNIP and FORCE (de Jorge et al. 2021; naver/force, prune methods 1 and 3) at initialisation, as the
Sparsest-Models study runs them: `iterations` steps on the exponential schedule, keeping int(N (F/N)^(k/it))
weights after step k, each step on one batch. The saliency |θ0 * g| is evaluated at the sparsified network
θ0 * m; the mask keeps the scores strictly above the k-th largest (so F - 1 at the end: the study's threshold).

- Iterative SNIP: the gradients of pruned weights are blocked; they get the lowest saliency and stay pruned.
- FORCE: gradients are not blocked, so a pruned weight may come back.
"""

from __future__ import annotations

import torch

from methods.global_prune import GlobalPruner, strictly_above
from methods.registry import register


class _Iterative(GlobalPruner):
    revive = False  # FORCE: pruned weights keep their saliency and may be chosen again

    def prune_at_init(self, model, context) -> None:
        total = self.total_weights()
        initial = {n: p.detach().clone() for n, p in self.params.items()}
        theta0 = self.weight_rows().clone()
        for config, rows in self.groups():
            for step in range(1, config.iterations + 1):
                with torch.no_grad():
                    for name, param in self.params.items():
                        param.copy_(initial[name] * self._masks[name])
                model.zero_grad(set_to_none=True)
                context.loss(model, context.batch(step)).sum().backward()
                scores = (theta0 * self.grad_rows()).abs()
                if not self.revive:
                    scores = scores.masked_fill(~self.rows_mask(), float("-inf"))
                index = [total - int(total * (self.keep[r] / total) ** (step / config.iterations)) for r in rows]
                self.set_rows(rows, strictly_above(scores[rows], index))
        with torch.no_grad():
            for name, param in self.params.items():
                param.copy_(initial[name])
        model.zero_grad(set_to_none=True)


@register
class IterativeSNIP(_Iterative):
    name = "iterative_snip"


@register
class FORCE(_Iterative):
    name = "force"
    revive = True
