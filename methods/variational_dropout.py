"""Variational dropout (Molchanov et al. 2017) as the State of Sparsity implements it (papers §1.3).

Per weight θ a log σ²; log α = log σ² − log(θ² + 1e-8), clipped to ±8 in training (log σ² recomputed from the
clipped value). Training uses the local reparameterisation trick: out = x·θ + sqrt(x²·σ² + 1e-8)·ε (Linear,
Conv). A linear layer applied to a sequence ([batch, positions…, features]) draws one ε per example and output
unit, shared by the positions, as the study's `broadcast_matmul_train` does; an embedding samples
θ + sqrt(σ² + 1e-8)·ε per looked-up row. Evaluation uses θ·[log α < t] with the
unclipped log α, at every threshold t of the config: each is an evaluation variant with its own rows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from methods.registry import register
from methods.reparam import LearnedSparsifier, forward_with

K1, K2, K3 = 0.63576, 1.8732, 1.48695
CLIP = 8.0
EPS = 1e-8


def log_alpha(theta: torch.Tensor, log_sigma2: torch.Tensor, clip: float | None = None) -> torch.Tensor:
    la = log_sigma2 - torch.log(theta**2 + EPS)
    return la.clamp(-clip, clip) if clip is not None else la


def negative_kl(la: torch.Tensor) -> torch.Tensor:
    """Molchanov's approximation of -KL per weight: k1·σ(k2 + k3·log α) − 0.5·log(1 + 1/α) − k1."""
    return K1 * torch.sigmoid(K2 + K3 * la) - 0.5 * F.softplus(-la) - K1


@register
class VariationalDropout(LearnedSparsifier):
    name = "variational_dropout"

    def prepare(self, model: nn.Module) -> None:
        self.log_sigma2: dict[str, nn.Parameter] = {}
        self.threshold = float(self.config.thresholds[0])
        super().prepare(model)

    def reparameterise(self, name, module):
        if name not in self.log_sigma2:
            init = torch.full_like(module.weight, self.config.init_log_sigma2)
            self.log_sigma2[name] = self._new_param(module, "weight_log_sigma2", init)
        super().reparameterise(name, module)

    def forward(self, name: str, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        theta = module.weight
        if not module.training:
            return forward_with(module, x, theta * self.mask(name))
        log_sigma2 = log_alpha(theta, self.log_sigma2[name], CLIP) + torch.log(theta**2 + EPS)
        variance = torch.exp(log_sigma2)
        if isinstance(module, nn.Embedding):
            std = forward_with(module, x, torch.sqrt(variance + EPS))
            return forward_with(module, x, theta) + std * torch.randn_like(std)
        mean = forward_with(module, x, theta)
        std = torch.sqrt(forward_with(module, x * x, variance, bias=False) + EPS)
        if isinstance(module, nn.Linear) and std.ndim >= 3:
            # the study's broadcast_matmul_train: one draw per (example, output unit), shared by its positions
            shape = (std.shape[0], *([1] * (std.ndim - 2)), std.shape[-1])
            return mean + std * torch.randn(shape, device=std.device, dtype=std.dtype)
        return mean + std * torch.randn_like(std)

    def penalty(self, step: int) -> torch.Tensor:
        weight = self.ramp(step)
        kl = sum(-negative_kl(log_alpha(self.params[n], ls2, CLIP)).sum() for n, ls2 in self.log_sigma2.items())
        return weight * kl

    @torch.no_grad()
    def mask(self, name: str) -> torch.Tensor:
        return log_alpha(self.params[name], self.log_sigma2[name]) < self.threshold

    def masks(self) -> dict[str, torch.Tensor]:
        return {n: self.mask(n) for n in self.params}

    def eval_variants(self) -> list[dict[str, Any]]:
        return [{"threshold": float(t)} for t in self.config.thresholds]

    def use_variant(self, variant: dict[str, Any]) -> None:
        self.threshold = float(variant["threshold"])
