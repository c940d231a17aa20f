"""RigL (Evci et al. 2020; rigl-torch) as the Sparsest-Models study runs it: sparse from the start at density F/N
spread by Erdős–Rényi-Kernel, each layer's initial mask random (its own seed) with numel - int(numel (1 - d))
weights (so the total is rounded per layer: width 16, F = 20 keeps 4 + 7 + 7 + 4). Every `delta_t` steps before
`end_step`, per layer: drop the int(n · f) smallest |w| of its n weights and grow as many where |dL/dw| of the
dense gradient is largest, f = alpha/2 (1 + cos(π t / end_step)); grown weights start at zero, and the
optimizer step of an update is skipped (the loop then zeroes the momentum of every pruned weight). On other steps
the gradients of pruned weights are zeroed, as rigl-torch's backward hooks do."""

from __future__ import annotations

import math

import torch

from methods import allocation
from methods.global_prune import GlobalPruner, exactly_top
from methods.registry import register


@register
class RigL(GlobalPruner):
    name = "rigl"

    def prepare(self, model) -> None:
        super().prepare(model)
        total = self.total_weights()
        shapes = {n: self.member_shape(p) for n, p in self.params.items()}
        rows = {n: self.member_rows(m).clone() for n, m in self._masks.items()}
        for k in range(len(self.members)):
            densities = allocation.erk_densities(1.0 - self.keep[k] / total, shapes)
            gen = torch.Generator().manual_seed(self.members[k][2])
            for name, shape in shapes.items():
                numel = shape.numel()
                zeros = int(numel * (1 - densities[name]))
                mask = torch.ones(numel, dtype=torch.bool)
                mask[torch.randperm(numel, generator=gen)[:zeros]] = False
                rows[name][k] = mask.to(rows[name].device)
        for name, r in rows.items():
            self._masks[name] = r.view(self._masks[name].shape)

    def _updating(self, step: int) -> list[int]:
        return [k for k, (c, _, _) in enumerate(self.members) if step % c.delta_t == 0 and step < c.end_step]

    @torch.no_grad()
    def before_update(self, step: int) -> bool | torch.Tensor:
        due = self._updating(step)
        if not due:
            for name, param in self.params.items():
                if param.grad is not None:
                    param.grad.mul_(self._masks[name])
            return True
        rows = torch.tensor(due, device=self.device())
        fractions = []
        for k in due:
            c = self.members[k][0]
            fractions.append(c.alpha / 2 * (1 + math.cos(step * math.pi / c.end_step)))
        for name, param in self.params.items():
            mask = self.member_rows(self._masks[name])[rows]
            weight = self.member_rows(param.detach())[rows].abs()
            grad = self.member_rows(param.grad)[rows].abs()
            ones = mask.sum(dim=1).tolist()
            dropped = [int(n * f) for n, f in zip(ones, fractions)]
            kept = exactly_top(weight, [n - d for n, d in zip(ones, dropped)])
            grown = exactly_top(grad.masked_fill(kept, float("-inf")), dropped)
            new = kept | grown
            with torch.no_grad():  # a weight that was pruned starts at zero (it is: masks zero it)
                full = self.member_rows(self._masks[name]).clone()
                full[rows] = new
                self._masks[name] = full.view(self._masks[name].shape)
        if self.stacked:
            take = torch.ones(len(self.members), dtype=torch.bool, device=self.device())
            take[rows] = False
            return take
        return False
