"""ProsPr (Alizadeh et al. 2022; mil-ad/prospr) at initialisation, as the Sparsest-Models study runs it: masks c
multiply the weights; `inner_steps` SGD steps (the run's learning rate and momentum, a new batch each) are taken
from the initial weights and differentiated through (second order: the "full" method); the score of a weight is
|dL(θ_T * c)/dc| on the next batch; keep exactly the top ceil((1 - prune_ratio) N), prune_ratio = 1 - F/N (which
float rounding can make F + 1, as in the study)."""

from __future__ import annotations

import math

import torch
from torch import nn

from methods.global_prune import GlobalPruner, exactly_top
from methods.registry import register


class Substituted(nn.Module):
    """`model` computed with other values for its parameters (torch.func.functional_call)."""

    def __init__(self, model: nn.Module, values: dict[str, torch.Tensor]):
        super().__init__()
        self.inner, self.values = model, values

    def forward(self, *args):
        return torch.func.functional_call(self.inner, self.values, args)


def per_member(values: list[float], like: torch.Tensor, stacked: bool) -> torch.Tensor | float:
    if not stacked:
        return values[0]
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, *([1] * (like.dim() - 1)))


@register
class ProsPr(GlobalPruner):
    name = "prospr"

    def prune_at_init(self, model, context) -> None:
        total = self.total_weights()
        names = {id(p): n for n, p in model.named_parameters()}
        weight_names = {names[id(p)]: n for n, p in self.params.items()}  # model name -> prunable name
        for config, rows in self.groups():
            theta = {n: p.detach().clone() for n, p in model.named_parameters()}
            gates = {n: torch.ones_like(theta[n], requires_grad=True) for n in weight_names}
            buffers: dict[str, torch.Tensor] = {}

            def effective(values, gates=gates):
                return {n: v * gates[n] if n in gates else v for n, v in values.items()}

            current = {n: v.requires_grad_(True) for n, v in theta.items()}
            for step in range(1, config.inner_steps + 1):
                loss = context.loss(Substituted(model, effective(current)), context.batch(step)).sum()
                grads = torch.autograd.grad(loss, list(current.values()), create_graph=True)
                updated = {}
                for (n, value), grad in zip(current.items(), grads):
                    momentum = per_member(context.momentum, value, self.stacked)
                    buffers[n] = grad if n not in buffers else momentum * buffers[n] + grad
                    updated[n] = value - per_member(context.lr, value, self.stacked) * buffers[n]
                current = updated
            batch = context.batch(config.inner_steps + 1)
            meta = context.loss(Substituted(model, effective(current)), batch).sum()
            grads = torch.autograd.grad(meta, [gates[n] for n in weight_names])
            scores = self.global_scores({weight_names[n]: g.abs() for n, g in zip(weight_names, grads)})
            k = [math.ceil((1 - (1 - self.keep[r] / total)) * total) for r in rows]
            self.set_rows(rows, exactly_top(scores[rows], k))
        model.zero_grad(set_to_none=True)
