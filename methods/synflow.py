"""SynFlow (Tanaka et al. 2020; ganguli-lab/Synaptic-Flow) at initialisation, data-free, as the Sparsest-Models
study runs it: weights and biases replaced by their absolute values (so |bias| carries flow too), an all-ones
input of one example, R = sum of the outputs; `iterations` rounds of score |θ * dR/dθ| over the weights, in
float32, pruning at iteration i (0-based) int(N - F^r N^(1-r)) weights with r = (i+1)/iterations and keeping the
scores strictly above that sorted value (so F - 1 at the end: the study's threshold). Signs are restored after.
"""

from __future__ import annotations

import torch

from methods.global_prune import GlobalPruner, strictly_above
from methods.registry import register


@register
class SynFlow(GlobalPruner):
    name = "synflow"

    def prune_at_init(self, model, context) -> None:
        total = self.total_weights()
        params = [p for p in model.parameters() if p.requires_grad]
        with torch.no_grad():
            signs = [torch.sign(p) for p in params]
            for p in params:
                p.abs_()
        x = context.batch(1)[0]
        first = x[:, :1] if self.stacked else x[:1]
        # an all-ones example, in the weights' precision (token inputs stay integers: token 1)
        ones = torch.ones_like(
            first, dtype=next(iter(self.params.values())).dtype if first.is_floating_point() else None
        )
        initial = {n: p.detach().clone() for n, p in self.params.items()}
        for config, rows in self.groups():
            with torch.no_grad():  # each group starts from the whole (absolute) initial network
                for name, param in self.params.items():
                    param.copy_(initial[name])
            for i in range(config.iterations):
                r = (i + 1) / config.iterations
                with torch.no_grad():
                    for name, param in self.params.items():
                        param.mul_(self._masks[name])
                model.zero_grad(set_to_none=True)
                model(ones).sum().backward()
                scores = (self.grad_rows() * self.weight_rows()).abs()
                index = [int(total - self.keep[k] ** r * total ** (1 - r)) for k in rows]
                self.set_rows(rows, strictly_above(scores[rows], index))
        with torch.no_grad():
            for name, param in self.params.items():
                param.copy_(initial[name])
            for p, sign in zip(params, signs):
                p.mul_(sign)
        model.zero_grad(set_to_none=True)
