"""The Cubist Spiral task's declaration (implemented in trainables/tasks/cubist.py), torch-free."""

from __future__ import annotations

import dataclasses
from typing import Literal

from methods.config import option
from trainables.tasks import declare
from trainables.tasks.supervised_options import RecipeOptions, SupervisedSpec


@dataclasses.dataclass(frozen=True)
class CubistOptions(RecipeOptions):
    width: int = option(16, "hidden width d1 = d2 = d3 of the MLP (unless d1, d2 or d3 is given)", "[1, 65536]")
    d1: int = option(0, "width of the first hidden layer (0: width)", "[0, 65536]")
    d2: int = option(0, "width of the second hidden layer (0: width)", "[0, 65536]")
    d3: int = option(0, "width of the third hidden layer (0: width)", "[0, 65536]")
    init: Literal["default", "bench95", "bench995"] = option(
        "default",
        "initial weights: drawn (PyTorch's default init, from the seed) or the study's stored BENCH-95 / BENCH-995 "
        "width-16 initialisation, its top-left block for narrower layers",
    )
    bias_mask: Literal["none", "out_degree"] = option(
        "none",
        "none: biases are never pruned; out_degree (the study's models): a hidden neuron's bias is zero while "
        "the neuron has no outgoing weight left (the output bias is never masked)",
    )

    def __post_init__(self):
        super().__post_init__()
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        for name in ("d1", "d2", "d3"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 1 (or 0: the uniform width), got {getattr(self, name)}")
        if self.init != "default" and max(self.widths) > STORED_WIDTH:
            raise ValueError(
                f"init {self.init} is a width-{STORED_WIDTH} network: hidden widths must be at most "
                f"{STORED_WIDTH}, got {self.widths}"
            )

    @property
    def widths(self) -> tuple[int, int, int]:
        """(d1, d2, d3): each layer's width, the uniform `width` where not given."""
        return tuple(d or self.width for d in (self.d1, self.d2, self.d3))


STORED_WIDTH = 16  # the study's stored initialisations are of a 2-16-16-16-1 network


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

    @classmethod
    def prunable_weights_for(cls, options: CubistOptions) -> int:
        """Weights of the MLP 2 -> d1 -> d2 -> d3 -> 1 (every one prunable; the study's N)."""
        d1, d2, d3 = options.widths
        return 2 * d1 + d1 * d2 + d2 * d3 + d3

    @classmethod
    def chain_for(cls, options: CubistOptions) -> tuple[int, ...]:
        return (2, *options.widths, 1)
