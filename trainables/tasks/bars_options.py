"""The oriented-bars task's declaration (implemented in trainables/tasks/bars.py), torch-free."""

from __future__ import annotations

import dataclasses

from trainables.tasks import declare
from trainables.tasks.supervised_options import RecipeOptions, SupervisedSpec


@dataclasses.dataclass(frozen=True)
class BarsOptions(RecipeOptions):
    channels: int = dataclasses.field(default=8, metadata={"help": "channels of the first conv (then 2x)"})
    epochs: int = dataclasses.field(default=10, metadata={"help": "training epochs (64 steps each at batch 64)"})
    batch_size: int = dataclasses.field(default=64, metadata={"help": "minibatch size"})
    optimizer: str = dataclasses.field(default="adam", metadata={"help": "sgd or adam"})
    lr: float = dataclasses.field(default=3e-3, metadata={"help": "learning rate"})
    eval_every: int = dataclasses.field(default=64, metadata={"help": "steps between evaluations"})

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
