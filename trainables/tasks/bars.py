"""Oriented bars: a tiny synthetic image task, the convolutional proxy on which conv paths are tested on CPU.

12x12 single-channel images of one bar (length 5-8) in one of four orientations (the class: horizontal,
vertical, diagonal, anti-diagonal) at a random position, plus Gaussian noise. Made deterministically: the same
4,096 training and 1,024 held-out images every time.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from trainables.tasks import register
from trainables.tasks.bars_options import BarsSpec
from trainables.tasks.supervised import SupervisedTask

SIZE, CLASSES = 12, 4
_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))  # (row step, column step) per class


def bars(n: int, seed: int, noise: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """n images of shape (1, 12, 12) and their labels in 0..3."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(CLASSES, (n,), generator=gen)
    lengths = torch.randint(5, 9, (n,), generator=gen)
    images = noise * torch.randn(n, 1, SIZE, SIZE, generator=gen)
    for i in range(n):
        dr, dc = _DIRECTIONS[labels[i]]
        span = lengths[i].item() - 1
        rows = range(0, SIZE - dr * span) if dr else range(SIZE)
        cols = range(max(0, -dc * span), SIZE - max(0, dc * span))
        r0 = rows[torch.randint(len(rows), (1,), generator=gen).item()]
        c0 = cols[torch.randint(len(cols), (1,), generator=gen).item()]
        for k in range(span + 1):
            images[i, 0, r0 + dr * k, c0 + dc * k] += 1.0
    return images, labels


@lru_cache(maxsize=2)
def _split(train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return bars(BarsSpec.train_size, seed=0) if train else bars(1024, seed=1)


class SmallCNN(nn.Sequential):
    def __init__(self, channels: int = 8, classes: int = CLASSES):
        c = channels
        super().__init__(
            nn.Conv2d(1, c, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * c, classes),
        )


@register
class Bars(BarsSpec, SupervisedTask):
    """A small CNN on the bars images (trainables/tasks/bars_options.py declares its options)."""

    @classmethod
    def train_data(cls) -> tuple[torch.Tensor, torch.Tensor]:
        return _split(train=True)

    def build_model(self) -> nn.Module:
        return SmallCNN(self.options.channels).to(self.device)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> float:
        """Top-1 accuracy on the 1,024 held-out images."""
        x, y = (t.to(self.device) for t in _split(train=False))
        model.eval()
        accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
        model.train()
        return accuracy
