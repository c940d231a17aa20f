"""What the Sparsest-Models study's nine algorithms share: a global target counted in weights, and its ways of
turning scores into a mask (papers/sparsest-models.md §4).

Each member of a pack has its own target F = round(N (1 - target)) (N: one member's prunable weights; a spec's
`nnz` gives F exactly, as 1 - F/N in double precision round-trips) and may have its own numeric options; every
selection is made within one member's row of the global scores, (K, N) in `params` order.

The study's thresholds are kept as its code has them, since they decide the measured NNZ: `strictly_above`
keeps the scores strictly above the sorted value at an index (so one fewer than "all but that many": F - 1),
`at_least_kth` keeps the scores at or above the k-th largest (k, or more on ties), `exactly_top` exactly k.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from methods.base import Sparsifier


class GlobalPruner(Sparsifier):
    """Base of the study's algorithms: targets in weights, members grouped by their options."""

    def prepare(self, model: nn.Module) -> None:
        super().prepare(model)
        total = self.total_weights()
        self.keep = [int(total * (1.0 - target) + 0.5) for _, target, _ in self.members]  # F per member

    def groups(self) -> list[tuple[object, list[int]]]:
        """(config, member rows) for each distinct config among the members: the algorithm runs once per group."""
        out: dict[object, list[int]] = {}
        for k, (config, _, _) in enumerate(self.members):
            out.setdefault(config, []).append(k)
        return list(out.items())

    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    def rows_mask(self) -> torch.Tensor:
        """The current masks as (K, N)."""
        return self.global_scores({n: m for n, m in self._masks.items()}).bool()

    def set_rows(self, rows: list[int], keep: torch.Tensor) -> None:
        """Members `rows` get masks `keep` (len(rows), N); the others keep theirs."""
        full = self.rows_mask().clone()
        full[torch.tensor(rows, device=full.device)] = keep
        for name, mask in self.split_rows(full).items():
            self._masks[name] = mask.bool()

    def weight_rows(self) -> torch.Tensor:
        return self.global_scores({n: p.detach() for n, p in self.params.items()})

    def grad_rows(self) -> torch.Tensor:
        return self.global_scores(
            {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach() for n, p in self.params.items()}
        )

    @torch.no_grad()
    def xavier_(self, rows: list[int]) -> None:
        """Re-draw the weights of members `rows` with xavier_normal (biases unchanged), each from its own seed."""
        for k in rows:
            gen = torch.Generator().manual_seed(self.members[k][2])
            for param in self.params.values():
                shape = self.member_shape(param)
                fan_out, fan_in = shape[0], math.prod(shape[1:])
                std = math.sqrt(2.0 / (fan_in + fan_out))
                value = torch.randn(shape, generator=gen) * std
                if self.stacked:
                    param[k].copy_(value.to(param.device))
                else:
                    param.copy_(value.to(param.device))

    def wants_xavier(self, reinit: str, stored_init: bool) -> bool:
        return reinit == "xavier" or (reinit == "auto" and not stored_init)


def strictly_above(scores: torch.Tensor, index: list[int]) -> torch.Tensor:
    """Per row, keep the scores strictly greater than the row's sorted (ascending) value at `index[row]`."""
    ordered = torch.sort(scores, dim=1).values
    idx = torch.tensor(index, device=scores.device).clamp(0, scores.shape[1] - 1)[:, None]
    threshold = ordered.gather(1, idx)
    keep = scores > threshold
    none_pruned = torch.tensor([i < 0 for i in index], device=scores.device)[:, None]
    return keep | none_pruned


def at_least_kth(scores: torch.Tensor, k: list[int]) -> torch.Tensor:
    """Per row, keep the scores at or above the row's k-th largest (k, or more where scores tie)."""
    ordered = torch.sort(scores, dim=1, descending=True).values
    idx = (torch.tensor(k, device=scores.device) - 1).clamp(0, scores.shape[1] - 1)[:, None]
    keep = scores >= ordered.gather(1, idx)
    return keep & torch.tensor([n > 0 for n in k], device=scores.device)[:, None]


def exactly_top(scores: torch.Tensor, k: list[int]) -> torch.Tensor:
    """Per row, keep exactly the k largest scores (ties broken by position: a stable sort)."""
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    ranks = (
        torch.arange(scores.shape[1], device=scores.device)[None, :] < torch.tensor(k, device=scores.device)[:, None]
    )
    return torch.empty_like(ranks).scatter_(1, order, ranks)
