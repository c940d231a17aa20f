"""Gradual pruning on a polynomial schedule with exact per-tensor top-k; methods differ only in their scores."""

from __future__ import annotations

import dataclasses

import torch

from methods import allocation
from methods.base import MethodConfig, Sparsifier
from methods.schedules import PolynomialSchedule


@dataclasses.dataclass(frozen=True)
class GradualConfig(MethodConfig):
    begin_step: int = dataclasses.field(metadata={"help": "first optimizer step at which masks are updated"})
    end_step: int = dataclasses.field(metadata={"help": "step at which the final sparsity is reached"})
    frequency: int = dataclasses.field(default=100, metadata={"help": "steps between mask updates"})

    def __post_init__(self):
        if self.begin_step < 0:
            raise ValueError(f"begin_step must be >= 0, got {self.begin_step}")
        if self.end_step <= self.begin_step:
            raise ValueError(f"end_step ({self.end_step}) must be greater than begin_step ({self.begin_step})")
        if self.frequency < 1:
            raise ValueError(f"frequency must be >= 1, got {self.frequency}")

    def check_steps(self, total_steps: int) -> None:
        if self.end_step > total_steps:
            raise ValueError(f"end_step ({self.end_step}) is beyond the task's {total_steps} training steps")


class GradualPruner(Sparsifier):
    """Zhu & Gupta gradual pruning: at each update, prune the lowest-scoring weights of each tensor.

    Pruned weights are set to zero and score -inf from then on, so masks only ever shrink.
    """

    Config = GradualConfig

    def prepare(self, model):
        super().prepare(model)
        cfg = self.config
        self.schedule = PolynomialSchedule(cfg.begin_step, cfg.end_step, cfg.frequency)

    def scores(self, name: str, param: torch.Tensor) -> torch.Tensor:
        """Higher score = kept longer. Overridden by each method."""
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        if self.schedule.is_update_step(step):
            self.update_masks(self.schedule.sparsity(step, self.target))
        self.apply_masks()

    @torch.no_grad()
    def update_masks(self, sparsity: float) -> None:
        for name, target in allocation.uniform(sparsity, self.params).items():
            param = self.params[name]
            n_pruned = int(round(target * param.numel()))
            scores = self.scores(name, param).flatten().float()
            scores = scores.masked_fill(~self._masks[name].flatten(), float("-inf"))
            # stable sort: ties are broken by position, so the same scores always give the same mask
            order = torch.argsort(scores, stable=True)
            mask = torch.ones(param.numel(), dtype=torch.bool, device=param.device)
            mask[order[:n_pruned]] = False
            self._masks[name] = mask.view_as(param)
