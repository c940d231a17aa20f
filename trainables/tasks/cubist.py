"""Cubist Spiral + four-layer MLP with Zhang & Papyan's SGD recipe (papers/sparsest-models.md §2)."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from trainables.packing.model import forward_members
from trainables.tasks import register
from trainables.tasks.cubist_options import CubistOptions, CubistSpec  # noqa: F401 (CubistOptions: re-exported)
from trainables.tasks.supervised import PackedSupervised, SupervisedTask

CUBIST_POINTS_PER_ARM = 50_000 // 2


def _cubist_vertices() -> tuple[torch.Tensor, torch.Tensor]:
    """17 vertices per arm: 2 turns of 8 straight segments at 45 degrees, arms 15 either side of r = 10*theta + pi."""
    theta = torch.linspace(math.pi, 5 * math.pi, 17, dtype=torch.float64) + 1.6 * (1 / 8) * 2 * math.pi
    direction = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    centre = (10 * theta + math.pi)[:, None] * direction
    outer, inner = centre + 15 * direction, centre - 15 * direction
    shift = torch.cat([outer, inner]).min(dim=0).values
    return outer - shift, inner - shift


def _segment_points(vertices: torch.Tensor) -> list[torch.Tensor]:
    """Points evenly spaced along each segment, endpoints included, in proportion to segment length."""
    lengths = (vertices[1:] - vertices[:-1]).norm(dim=1)
    counts = [int(length / lengths.sum() * CUBIST_POINTS_PER_ARM) for length in lengths.tolist()]
    segments = []
    for i, n in enumerate(counts):
        t = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]
        segments.append(t * vertices[i] + (1 - t) * vertices[i + 1])
    return segments


def cubist_segments() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The raw (unstandardised) points of each segment of each arm: (class 0 segments, class 1 segments)."""
    outer, inner = _cubist_vertices()
    return _segment_points(outer), _segment_points(inner)


def cubist_spiral() -> tuple[torch.Tensor, torch.Tensor]:
    """The Cubist Spiral of Zhang & Papyan (2024): x of shape (49982, 2) standardised, y of shape (49982, 1).

    Class 0 is the outer arm, class 1 the inner one; y is float for BCE-with-logits. There is no split:
    the study evaluates on the training points.
    """
    outer, inner = cubist_segments()
    arm0, arm1 = torch.cat(outer), torch.cat(inner)
    x = torch.cat([arm0, arm1]).float()
    x = (x - x.mean(dim=0)) / x.std(dim=0)  # unbiased std, as torch.std
    y = torch.cat([torch.zeros(len(arm0), 1), torch.ones(len(arm1), 1)])
    return x, y


class MLP(nn.Sequential):
    """Zhang & Papyan's four-layer MLP: d_in -> d1 -> d2 -> d3 -> d_out, ReLU, biases, PyTorch's default init.

    `bias_follows_out_degree` (the study's models) tells a sparsifier to hold a hidden neuron's bias at zero
    while the neuron has no outgoing weight left (methods/base.py)."""

    def __init__(
        self,
        d_in: int = 2,
        width: int = 16,
        d_out: int = 1,
        hidden_layers: int = 3,
        widths: tuple[int, ...] | None = None,
        bias_follows_out_degree: bool = False,
    ):
        widths = tuple(widths) if widths else (width,) * hidden_layers
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip((d_in, *widths), widths):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], d_out))
        super().__init__(*layers)
        self.bias_follows_out_degree = bias_follows_out_degree


STORED = Path(__file__).parent / "stored_inits"  # the study's BENCH-95 / BENCH-995 initialisations (README.md)
STORED_KEYS = ("first_layer", "second_layer", "third_layer", "clf")


@lru_cache(maxsize=2)
def stored_init(name: str) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """The study's stored width-16 initialisation `name` (bench95, bench995): (weight, bias) per layer."""
    with open(STORED / f"{name}_init.json") as f:
        tensors = json.load(f)["tensors"]
    return tuple(
        (torch.tensor(tensors[f"{k}.weight"], dtype=torch.float32), torch.tensor(tensors[f"{k}.bias"]))
        for k in STORED_KEYS
    )


@torch.no_grad()
def load_stored_init(model: MLP, name: str) -> None:
    """Each layer's weights and bias from the stored initialisation: its top-left block (W[:out, :in], b[:out])."""
    linear = [m for m in model if isinstance(m, nn.Linear)]
    for layer, (weight, bias) in zip(linear, stored_init(name), strict=True):
        out, fan_in = layer.weight.shape
        layer.weight.copy_(weight[:out, :fan_in])
        layer.bias.copy_(bias[:out])


@lru_cache(maxsize=1)
def _data() -> tuple[torch.Tensor, torch.Tensor]:
    return cubist_spiral()


class PackedCubist(PackedSupervised):
    """K Cubist-Spiral MLPs of one width as one stacked model."""

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        per_point = nn.functional.binary_cross_entropy_with_logits(model(x), y, reduction="none")
        return per_point.mean(dim=(1, 2))

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> list[float]:
        """Accuracy of every member on all points, a few members at a time (K x 49,982 activations won't fit)."""
        members, n = model[0].weight.shape[0], len(self.x)
        chunk = max(1, 2**24 // (n * max(self.options.widths)))
        correct = []
        for start in range(0, members, chunk):
            stop = min(members, start + chunk)
            logits = forward_members(model, self.x.expand(stop - start, n, self.x.shape[1]), start, stop)
            correct.append(((logits > 0).float() == self.y).sum(dim=(1, 2)))
        return [c / n for c in torch.cat(correct).tolist()]


@register
class CubistSpiral(CubistSpec, SupervisedTask):
    """Defaults are the study's: 50 epochs of SGD (momentum 0.9, wd 5e-4), batch 128, lr 0.1, cosine."""

    Packed = PackedCubist

    @classmethod
    def train_data(cls) -> tuple[torch.Tensor, torch.Tensor]:
        return _data()

    def build_model(self) -> nn.Module:
        o = self.options
        model = MLP(2, widths=o.widths, bias_follows_out_degree=o.bias_mask == "out_degree")
        if o.init != "default":
            load_stored_init(model, o.init)
        return model.to(self.device)

    @property
    def stored_init(self) -> bool:
        return self.options.init != "default"

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return nn.functional.binary_cross_entropy_with_logits(model(x), y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> float:
        """Accuracy on all 49,982 points (the study has no split); a logit of exactly 0 predicts class 0."""
        model.eval()
        predictions = (model(self.x) > 0).float()
        model.train()
        return (predictions == self.y).sum().item() / len(self.y)  # an exact count, as a pack computes it
