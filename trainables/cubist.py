"""Cubist Spiral + four-layer MLP with Zhang & Papyan's SGD recipe (papers/sparsest-models.md §2)."""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import torch
from torch import nn

from trainables.datasets import cubist_spiral
from trainables.models import MLP
from trainables.supervised import RecipeOptions, SupervisedTask
from trainables.tasks import register


@dataclasses.dataclass(frozen=True)
class CubistOptions(RecipeOptions):
    width: int = dataclasses.field(default=16, metadata={"help": "hidden width d1 = d2 = d3 of the MLP"})

    def __post_init__(self):
        super().__post_init__()
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")


@lru_cache(maxsize=1)
def _data() -> tuple[torch.Tensor, torch.Tensor]:
    return cubist_spiral()


@register
class CubistSpiral(SupervisedTask):
    """Defaults are the study's: 50 epochs of SGD (momentum 0.9, wd 5e-4), batch 128, lr 0.1, cosine."""

    name = "cubist_spiral"
    Options = CubistOptions
    metric = "accuracy"
    mode = "max"

    @classmethod
    def train_data(cls) -> tuple[torch.Tensor, torch.Tensor]:
        return _data()

    def build_model(self) -> nn.Module:
        return MLP(2, self.options.width, 1).to(self.device)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return nn.functional.binary_cross_entropy_with_logits(model(x), y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> float:
        """Accuracy on all 49,982 points (the study has no split); a logit of exactly 0 predicts class 0."""
        model.eval()
        predictions = (model(self.x) > 0).float()
        model.train()
        return (predictions == self.y).float().mean().item()
