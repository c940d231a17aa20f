"""L0 regularisation with hard-concrete gates (Louizos et al. 2018) as the State of Sparsity implements it.

One gate per weight: in training z = clip(sigmoid((log u − log(1−u) + log α)/β)·(ζ−γ) + γ, 0, 1), one sample per
weight per step shared across the batch; W = θ·z. Penalty: Σ sigmoid(log α − β·log(−γ/ζ)), the expected number
of nonzero gates. Evaluation: the deterministic gate clip(sigmoid(log α)·(ζ−γ) + γ, 0, 1); a weight is zero
exactly when its gate is 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from methods.registry import register
from methods.reparam import LearnedSparsifier, forward_with

BETA, GAMMA, ZETA = 2 / 3, -0.1, 1.1
EPS = 1e-8


def sample_gate(la: torch.Tensor) -> torch.Tensor:
    u = torch.rand_like(la)
    s = torch.sigmoid((torch.log(u + EPS) - torch.log(1 - u) + la) / BETA)
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0, 1)


def eval_gate(la: torch.Tensor) -> torch.Tensor:
    return (torch.sigmoid(la) * (ZETA - GAMMA) + GAMMA).clamp(0, 1)


def expected_l0(la: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(la - BETA * math.log(-GAMMA / ZETA))


@register
class L0(LearnedSparsifier):
    name = "l0"

    def prepare(self, model: nn.Module) -> None:
        self.log_alpha: dict[str, nn.Parameter] = {}
        self.generator = torch.Generator().manual_seed(self.seed)
        super().prepare(model)

    def reparameterise(self, name, module):
        if name not in self.log_alpha:
            init = torch.randn(module.weight.shape, generator=self.generator) * 0.01 + self.config.init_log_alpha
            self.log_alpha[name] = self._new_param(module, "weight_log_alpha", init)
        super().reparameterise(name, module)

    def forward(self, name: str, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        la = self.log_alpha[name]
        gate = sample_gate(la) if module.training else eval_gate(la)
        return forward_with(module, x, module.weight * gate)

    def penalty(self, step: int) -> torch.Tensor:
        return self.ramp(step) * sum(expected_l0(la).sum() for la in self.log_alpha.values())

    @torch.no_grad()
    def masks(self) -> dict[str, torch.Tensor]:
        return {n: eval_gate(self.log_alpha[n]) > 0 for n in self.params}
