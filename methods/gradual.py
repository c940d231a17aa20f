"""Gradual pruning on a polynomial schedule with exact top-k; methods differ only in their scores.

Composed, not flagged: the schedule says how sparse over time, the allocation says how the target is spread
over tensors (uniform, global, erk; plus fixed per-layer sparsities), the method says which weights go first.
"""

from __future__ import annotations

import torch

from methods import allocation
from methods.base import Sparsifier
from methods.schedules import PolynomialSchedule


class GradualPruner(Sparsifier):
    """Zhu & Gupta gradual pruning: at each update, prune the lowest-scoring weights.

    Pruned weights are set to zero and score -inf from then on, so masks only ever shrink. Packed, each member
    has its own schedule, allocation of its target and update steps; every top-k is taken within one member.
    Its subclasses are declared with `GradualConfig` (methods/config.py) and packable.
    """

    def prepare(self, model):
        super().prepare(model)
        shapes = {n: self.member_shape(p) for n, p in self.params.items()}
        self.schedules, self.member_finals = [], []
        for cfg, target, _ in self.members:
            self.schedules.append(PolynomialSchedule(cfg.begin_step, cfg.end_step, cfg.frequency))
            fixed = allocation.fixed_layers(list(shapes), cfg.first_layer_dense, cfg.layer_overrides)
            self.member_finals.append(allocation.allocate(cfg.allocation, target, shapes, fixed))
        together = {tuple(n for n, f in finals.items() if f is None) for finals in self.member_finals}
        if len(together) > 1:
            raise ValueError("members of one pack must rank the same tensors together (one allocation)")
        self.ranked_together = list(together.pop())
        self.schedule, self.finals = self.schedules[0], self.member_finals[0]
        self._by_schedule: dict[PolynomialSchedule, list[int]] = {}  # members of a pack mostly share one
        for k, schedule in enumerate(self.schedules):
            self._by_schedule.setdefault(schedule, []).append(k)

    def scores(self, name: str, param: torch.Tensor) -> torch.Tensor:
        """Higher score = kept longer. Overridden by each method."""
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        due = sorted(k for sched, ks in self._by_schedule.items() if sched.is_update_step(step) for k in ks)
        if due:
            self.update_masks(step, due)
        self.apply_masks()

    @torch.no_grad()
    def update_masks(self, step: int, due: list[int] | None = None) -> None:
        """New masks for the members in `due` (all when None), each from its own schedule and target."""
        due = list(range(len(self.members))) if due is None else due
        rows = torch.tensor(due, device=next(iter(self.params.values())).device)
        for name in self.params:
            if name in self.ranked_together:
                continue
            numel = self.member_shape(self.params[name]).numel()
            n_pruned = [round(self.schedules[k].sparsity(step, self.member_finals[k][name]) * numel) for k in due]
            self._set_rows(name, rows, self._prune(self._masked_scores(name)[rows], n_pruned))
        if self.ranked_together:
            scores = torch.cat([self._masked_scores(n)[rows] for n in self.ranked_together], dim=1)
            n_pruned = [round(self.schedules[k].sparsity(step, self.members[k][1]) * scores.shape[1]) for k in due]
            keep = self._prune(scores, n_pruned)
            sizes = [self.member_shape(self.params[n]).numel() for n in self.ranked_together]
            for name, part in zip(self.ranked_together, keep.split(sizes, dim=1)):
                self._set_rows(name, rows, part)

    def _set_rows(self, name: str, rows: torch.Tensor, keep: torch.Tensor) -> None:
        mask = self.member_rows(self._masks[name]).clone()
        mask[rows] = keep
        self._masks[name] = mask.view(self._masks[name].shape)

    def _masked_scores(self, name: str) -> torch.Tensor:
        scores = self.member_rows(self.scores(name, self.params[name])).float()
        return scores.masked_fill(~self.member_rows(self._masks[name]), float("-inf"))

    @staticmethod
    def _prune(scores: torch.Tensor, n_pruned: list[int]) -> torch.Tensor:
        """Per row of `scores` (one member each), keep all but its `n_pruned[row]` lowest scores."""
        # stable sort: ties are broken by position, so the same scores always give the same mask
        order = torch.argsort(scores, dim=1, stable=True)
        counts = torch.tensor(n_pruned, device=scores.device)[:, None]
        ranked_keep = torch.arange(scores.shape[1], device=scores.device)[None, :] >= counts
        return torch.empty_like(ranked_keep).scatter_(1, order, ranked_keep)
