"""SNIP (Lee et al. 2019; mil-ad/snip) at initialisation, as the Sparsest-Models study runs it: connection
sensitivity |dL/dc| = |g * w| summed over `batches` minibatches, normalised; keep the scores at or above the
int(N * F/N)-th largest (F, or more on ties). Drawn weights are first re-drawn with xavier_normal (`reinit`)."""

from __future__ import annotations

from methods.global_prune import GlobalPruner, at_least_kth
from methods.registry import register


@register
class SNIP(GlobalPruner):
    name = "snip"

    def prune_at_init(self, model, context) -> None:
        total = self.total_weights()
        for config, rows in self.groups():
            if self.wants_xavier(config.reinit, context.stored_init):
                self.xavier_(rows)
            model.zero_grad(set_to_none=True)
            for b in range(1, config.batches + 1):
                context.loss(model, context.batch(b)).sum().backward()
            scores = (self.grad_rows() * self.weight_rows()).abs()
            scores = scores / scores.sum(dim=1, keepdim=True)
            k = [int(total * (self.keep[r] / total)) for r in rows]
            self.set_rows(rows, at_least_kth(scores[rows], k))
        model.zero_grad(set_to_none=True)
