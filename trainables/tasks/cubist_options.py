"""The Cubist Spiral task's declaration (implemented in trainables/tasks/cubist.py), torch-free."""

from __future__ import annotations

import dataclasses

from methods.config import option
from trainables.tasks import declare
from trainables.tasks.supervised_options import RecipeOptions, SupervisedSpec


@dataclasses.dataclass(frozen=True)
class CubistOptions(RecipeOptions):
    width: int = option(16, "hidden width d1 = d2 = d3 of the MLP", "[1, 65536]")

    def __post_init__(self):
        super().__post_init__()
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")


@declare
class CubistSpec(SupervisedSpec):
    """Defaults are the study's: 50 epochs of SGD (momentum 0.9, wd 5e-4), batch 128, lr 0.1, cosine."""

    name = "cubist_spiral"
    implementation = "trainables.tasks.cubist:CubistSpiral"
    Options = CubistOptions
    metric = "accuracy"
    mode = "max"
    train_size = 49_982  # the spiral's points (cubist.cubist_spiral); there is no split
    packable = True
