"""The oriented-bars task's declaration (implemented in trainables/tasks/bars.py), torch-free."""

from __future__ import annotations

import dataclasses
from typing import Literal

from methods.config import option
from trainables.tasks import declare
from trainables.tasks.supervised_options import RecipeOptions, SupervisedSpec


@dataclasses.dataclass(frozen=True)
class BarsOptions(RecipeOptions):
    channels: int = option(8, "channels of the first conv (then 2x)", "[1, 4096]")
    epochs: int = option(10, "training epochs (64 steps each at batch 64)", "[1, 1e6]")
    batch_size: int = option(64, "minibatch size", "[1, 1e7]")
    optimizer: Literal["sgd", "adam"] = option("adam", "SGD with momentum, or Adam")
    lr: float = option(3e-3, "learning rate", "(0, 1000]")
    eval_every: int = option(64, "steps between evaluations", "[1, 1e15]")

    def __post_init__(self):
        super().__post_init__()
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be sgd or adam, got {self.optimizer!r}")
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels}")


@declare
class BarsSpec(SupervisedSpec):
    name = "bars_cnn"
    implementation = "trainables.tasks.bars:Bars"
    Options = BarsOptions
    metric = "accuracy"
    mode = "max"
    train_size = 4096  # training images (and 1,024 held out)
