"""Gradual pruning on a polynomial schedule with exact top-k; methods differ only in their scores.

Composed, not flagged: the schedule says how sparse over time, the allocation says how the target is spread
over tensors (uniform, global, erk; plus fixed per-layer sparsities), the method says which weights go first.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from methods import allocation
from methods.base import MethodConfig, Sparsifier, option
from methods.schedules import PolynomialSchedule


@dataclasses.dataclass(frozen=True)
class GradualConfig(MethodConfig):
    begin_step: int = option(help="first optimizer step at which masks are updated")
    end_step: int = option(help="step at which the final sparsity is reached")
    frequency: int = option(100, "steps between mask updates")
    allocation: Literal["uniform", "global", "erk"] = option(
        "uniform", "spread of the target over tensors: same per tensor, one global ranking, or Erdős–Rényi-Kernel"
    )
    first_layer_dense: bool = option(False, "keep the first prunable tensor dense")
    layer_overrides: dict = option({}, "fixed final sparsity by tensor-name glob, e.g. {'fc.weight': 0.8}")

    def __post_init__(self):
        if self.begin_step < 0:
            raise ValueError(f"begin_step must be >= 0, got {self.begin_step}")
        if self.end_step <= self.begin_step:
            raise ValueError(f"end_step ({self.end_step}) must be greater than begin_step ({self.begin_step})")
        if self.frequency < 1:
            raise ValueError(f"frequency must be >= 1, got {self.frequency}")
        for pattern, value in self.layer_overrides.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"layer_overrides[{pattern!r}] must be a sparsity in [0, 1), got {value!r}")

    def check_steps(self, total_steps: int) -> None:
        if self.end_step > total_steps:
            raise ValueError(f"end_step ({self.end_step}) is beyond the task's {total_steps} training steps")


class GradualPruner(Sparsifier):
    """Zhu & Gupta gradual pruning: at each update, prune the lowest-scoring weights.

    Pruned weights are set to zero and score -inf from then on, so masks only ever shrink.
    """

    Config = GradualConfig

    def prepare(self, model):
        super().prepare(model)
        cfg = self.config
        self.schedule = PolynomialSchedule(cfg.begin_step, cfg.end_step, cfg.frequency)
        shapes = {n: p.shape for n, p in self.params.items()}
        fixed = allocation.fixed_layers(list(shapes), cfg.first_layer_dense, cfg.layer_overrides)
        self.finals = allocation.allocate(cfg.allocation, self.target, shapes, fixed)

    def scores(self, name: str, param: torch.Tensor) -> torch.Tensor:
        """Higher score = kept longer. Overridden by each method."""
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        if self.schedule.is_update_step(step):
            self.update_masks(step)
        self.apply_masks()

    @torch.no_grad()
    def update_masks(self, step: int) -> None:
        ranked_together = [n for n, final in self.finals.items() if final is None]
        for name, final in self.finals.items():
            if final is not None:
                n_pruned = round(self.schedule.sparsity(step, final) * self.params[name].numel())
                self._masks[name] = self._prune(self._masked_scores(name), n_pruned).view_as(self.params[name])
        if ranked_together:
            scores = torch.cat([self._masked_scores(n) for n in ranked_together])
            keep = self._prune(scores, round(self.schedule.sparsity(step, self.target) * scores.numel()))
            for name, part in zip(ranked_together, keep.split([self.params[n].numel() for n in ranked_together])):
                self._masks[name] = part.view_as(self.params[name])

    def _masked_scores(self, name: str) -> torch.Tensor:
        scores = self.scores(name, self.params[name]).flatten().float()
        return scores.masked_fill(~self._masks[name].flatten(), float("-inf"))

    @staticmethod
    def _prune(scores: torch.Tensor, n_pruned: int) -> torch.Tensor:
        # stable sort: ties are broken by position, so the same scores always give the same mask
        order = torch.argsort(scores, stable=True)
        keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
        keep[order[:n_pruned]] = False
        return keep
