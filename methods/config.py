"""What every method *is*, without torch: its config dataclass and its declaration (methods/registry.py).

The spec, the planner and `sparsity methods` read only this module, so they answer without importing torch; the
training loop imports a method's implementation (methods/<module>.py) through `methods.get(name)`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from methods.registry import declare


def option(default: Any = dataclasses.MISSING, help: str = "", range: str | None = None) -> Any:
    """A config field with its help text (listed by `sparsity methods`, quoted in spec errors) and, for numbers
    (or a list's or dict's numbers), the interval a spec's value must lie in, e.g. "[0, 1)" or "(0, inf)". A list or
    dict default is copied per instance. Used by every config dataclass of the project."""
    metadata = {"help": help} if range is None else {"help": help, "range": range}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """Base of every method's hyper-parameters. Fields carry `metadata={"help": ...}`."""

    def check_steps(self, total_steps: int) -> None:
        """Raise ValueError if these options cannot run in a training of `total_steps` steps (one round's)."""

    def training_rounds(self) -> int:
        """How many times the task's training runs, restarted in between (IMP with rewinding); 1 for most."""
        return 1


# -- no pruning --------------------------------------------------------------------------------------------------
declare("dense", MethodConfig, "methods.dense:Dense", targets_sparsity=False, packable=True)
# the sparsity is the mask source's (a parent trial's); the target is recorded, not pursued
declare("fixed_mask", MethodConfig, "methods.fixed:FixedMask", targets_sparsity=False)


# -- gradual pruning (methods/gradual.py) ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GradualConfig(MethodConfig):
    begin_step: int = option(help="first optimizer step at which masks are updated", range="[0, 1e15]")
    end_step: int = option(help="step at which the final sparsity is reached", range="[1, 1e15]")
    frequency: int = option(100, "steps between mask updates", "[1, 1e15]")
    allocation: Literal["uniform", "global", "erk"] = option(
        "uniform", "spread of the target over tensors: same per tensor, one global ranking, or Erdős–Rényi-Kernel"
    )
    first_layer_dense: bool = option(False, "keep the first prunable tensor dense")
    layer_overrides: dict[str, float] = option(
        {}, "fixed final sparsity by tensor-name glob, e.g. {'fc.weight': 0.8}", "[0, 1)"
    )

    def __post_init__(self):
        if self.begin_step < 0:
            raise ValueError(f"begin_step must be >= 0, got {self.begin_step}")
        if self.end_step <= self.begin_step:
            raise ValueError(f"end_step ({self.end_step}) must be greater than begin_step ({self.begin_step})")
        if self.frequency < 1:
            raise ValueError(f"frequency must be >= 1, got {self.frequency}")
        for pattern, value in self.layer_overrides.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"layer_overrides[{pattern!r}] must be a sparsity in [0, 1), got {value!r}")

    def check_steps(self, total_steps: int) -> None:
        if self.end_step > total_steps:
            raise ValueError(f"end_step ({self.end_step}) is beyond the task's {total_steps} training steps")


declare("magnitude", GradualConfig, "methods.magnitude:Magnitude", packable=True)
declare("random", GradualConfig, "methods.random_pruning:Random", packable=True)


# -- methods that learn their sparsity (methods/reparam.py) ------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RampConfig(MethodConfig):
    """The regulariser weight: w(step) = weight * ramp(step), as in the study's Transformer code."""

    weight: float = option(
        help="coefficient of the regulariser (the study divides by the training-set size)", range="[0, 1e12]"
    )
    ramp: Literal["linear", "cubic"] = option("linear", "linear ramp, or cubic ramp followed by a 0.9 moving average")
    ramp_start: int = option(0, "step at which the ramp starts", "[0, 1e15]")
    ramp_length: int = option(1, "steps from start to full weight (1: no ramp)", "[1, 1e15]")

    def __post_init__(self):
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        if self.ramp_start < 0 or self.ramp_length < 1:
            raise ValueError("ramp_start must be >= 0 and ramp_length >= 1")


@dataclasses.dataclass(frozen=True)
class L0Config(RampConfig):
    init_log_alpha: float = option(
        2.197, "mean of the initial log α, drawn from N(mean, 0.01) (2.197: 10% dropout)", "[-50, 50]"
    )


@dataclasses.dataclass(frozen=True)
class VDConfig(RampConfig):
    thresholds: list[float] = option(
        [3.0],
        "log α thresholds to evaluate at (one evaluation and trial row each; log α is clipped to ±8); "
        "study: 0.5 RN50, 0..5 T2T",
        "[-8, 8]",
    )
    init_log_sigma2: float = option(
        -10.0, "initial log σ² of every weight (study: -10 Transformer, -15 ResNet-50)", "[-50, 50]"
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.thresholds or any(isinstance(t, bool) or not isinstance(t, (int, float)) for t in self.thresholds):
            raise ValueError(f"thresholds must be a non-empty list of numbers, got {self.thresholds!r}")


declare("l0", L0Config, "methods.l0:L0", targets_sparsity=False, learns_sparsity=True)
declare(
    "variational_dropout",
    VDConfig,
    "methods.variational_dropout:VariationalDropout",
    targets_sparsity=False,
    learns_sparsity=True,
    variant_columns={"threshold": "float"},
)


# -- the Sparsest-Models study's nine algorithms (papers/sparsest-models.md §4) ---------------------------------
# Each prunes globally over the prunable weights to the trial's target, given as a number of weights to keep (a
# spec's `nnz`; a `sparsity` target keeps round(N * (1 - sparsity))). Defaults are the study's, for its recipe of
# 19,500 steps (50 epochs of 390); where its code and the paper it cites differ, its code is followed.
REINIT = Literal["auto", "xavier", "none"]
REINIT_HELP = (
    "re-initialise the weights with xavier_normal before scoring: auto (the study) does it for drawn weights "
    "and not for a stored initialisation (init: bench95 | bench995)"
)


@dataclasses.dataclass(frozen=True)
class IMPRewindConfig(MethodConfig):
    rounds: int = option(
        5,
        "training rounds; after round k < rounds, global magnitude pruning to int(N (F/N)^(k/(rounds-1)))",
        "[2, 100]",
    )

    def training_rounds(self) -> int:
        return self.rounds


@dataclasses.dataclass(frozen=True)
class GMPConfig(MethodConfig):
    frequency: int = option(
        97, "steps between pruning events, from step `frequency` to the end (study: 19500 // 200)", "[1, 1e15]"
    )
    end_step: int = option(
        19303, "the cubic schedule's length T: target F + (N - F)(1 - t/T)^3 (study: 199 * 97)", "[1, 1e15]"
    )

    def check_steps(self, total_steps: int) -> None:
        if self.frequency > total_steps:
            raise ValueError(f"frequency ({self.frequency}) is beyond the task's {total_steps} training steps")


@dataclasses.dataclass(frozen=True)
class RigLConfig(MethodConfig):
    delta_t: int = option(100, "steps between mask updates (ΔT)", "[1, 1e15]")
    alpha: float = option(0.3, "initial fraction of each layer's weights dropped and regrown, cosine-decayed", "(0, 1]")
    end_step: int = option(14625, "last step with mask updates (T_end; study: 0.75 x 19,500)", "[1, 1e15]")

    def check_steps(self, total_steps: int) -> None:
        if self.end_step > total_steps:
            raise ValueError(f"end_step ({self.end_step}) is beyond the task's {total_steps} training steps")


@dataclasses.dataclass(frozen=True)
class ProsPrConfig(MethodConfig):
    inner_steps: int = option(3, "SGD steps differentiated through (each on its own batch)", "[1, 100]")


@dataclasses.dataclass(frozen=True)
class IterativeConfig(MethodConfig):
    iterations: int = option(
        10, "pruning iterations, each on one batch; kept fraction (F/N)^(k/iterations)", "[1, 1000]"
    )


@dataclasses.dataclass(frozen=True)
class SNIPConfig(MethodConfig):
    batches: int = option(1, "minibatches whose gradients are summed for the scores", "[1, 1000]")
    reinit: REINIT = option("auto", REINIT_HELP)


@dataclasses.dataclass(frozen=True)
class GraSPConfig(MethodConfig):
    samples_per_class: int = option(
        25, "training points per class the Hessian-gradient product is computed on", "[1, 1e6]"
    )
    temperature: float = option(200.0, "the logits are divided by it (T)", "(0, 1e6]")
    reinit: REINIT = option("auto", REINIT_HELP)


@dataclasses.dataclass(frozen=True)
class SynFlowConfig(MethodConfig):
    iterations: int = option(100, "pruning iterations on the exponential schedule", "[1, 10000]")


declare(
    "imp_rewind",
    IMPRewindConfig,
    "methods.imp_rewind:IMPRewind",
    packable=True,
    summary="iterative magnitude pruning with rewinding to the initial weights (lottery ticket; the study's imp_LTH)",
)
declare(
    "gmp",
    GMPConfig,
    "methods.gmp:GMP",
    packable=True,
    summary="gradual global magnitude pruning on a cubic schedule, no rewinding (Zhu & Gupta; the study's imp)",
)
declare(
    "rigl",
    RigLConfig,
    "methods.rigl:RigL",
    packable=True,
    summary="RigL: sparse from the start (ERK, random mask), drop by magnitude, regrow by gradient (the study's rigL)",
)
declare(
    "prospr",
    ProsPrConfig,
    "methods.prospr:ProsPr",
    packable=True,
    summary="ProsPr: prune at init by the meta-gradient through a few SGD steps (the study's prospr)",
)
declare(
    "iterative_snip",
    IterativeConfig,
    "methods.iterative_snip:IterativeSNIP",
    packable=True,
    summary="iterative SNIP at init, pruned weights stay pruned (FORCE paper; the study's iter_snip)",
)
declare(
    "force",
    IterativeConfig,
    "methods.iterative_snip:FORCE",
    packable=True,
    summary="FORCE at init: iterative, saliency at the sparsified net, pruned weights may return (the study's FORCE)",
)
declare(
    "grasp",
    GraSPConfig,
    "methods.grasp:GraSP",
    packable=True,
    summary="GraSP at init: remove the weights whose removal least reduces gradient flow (the study's grasp)",
)
declare(
    "snip",
    SNIPConfig,
    "methods.snip:SNIP",
    packable=True,
    summary="SNIP at init: connection sensitivity |g w| on one batch (the study's snip)",
)
declare(
    "synflow",
    SynFlowConfig,
    "methods.synflow:SynFlow",
    packable=True,
    summary="SynFlow at init, data-free: iterative synaptic-flow conservation (the study's synFlow)",
)


# -- the combinatorial search's stages (sweep/search.py; papers/sparsest-models.md §3) ---------------------------
# Masks fixed before training, inside a chain whose hidden layers are at least as wide as the structure: the top-
# left block of every layer (d_in -> d1 -> d2 -> d3 -> d_out), dense (phase 1) or one eligible mask per hidden
# layer with the classifier dense (phase 2). Given by the search section, never as a spec's `methods`.
@dataclasses.dataclass(frozen=True)
class StructureConfig(MethodConfig):
    active_d1: int = option(1, "neurons of hidden layer 1 in the structure (the top-left block)", "[1, 65536]")
    active_d2: int = option(1, "neurons of hidden layer 2 in the structure", "[1, 65536]")
    active_d3: int = option(1, "neurons of hidden layer 3 in the structure", "[1, 65536]")

    @property
    def structure(self) -> tuple[int, int, int]:
        return (self.active_d1, self.active_d2, self.active_d3)


@dataclasses.dataclass(frozen=True)
class SearchMaskConfig(StructureConfig):
    w1_nnz: int = option(1, "nonzero weights of hidden layer 1's block (d_in -> d1)", "[1, 1e9]")
    w1_mask: int = option(0, "which eligible mask with w1_nnz nonzeros (methods/eligible.py's order)", "[0, 1e18]")
    w2_nnz: int = option(1, "nonzero weights of hidden layer 2's block (d1 -> d2)", "[1, 1e9]")
    w2_mask: int = option(0, "which eligible mask with w2_nnz nonzeros", "[0, 1e18]")
    w3_nnz: int = option(1, "nonzero weights of hidden layer 3's block (d2 -> d3)", "[1, 1e9]")
    w3_mask: int = option(0, "which eligible mask with w3_nnz nonzeros", "[0, 1e18]")

    def layer_masks(self, d_in: int) -> list[tuple[int, int, int, int]]:
        """(inputs, outputs, nnz, index) of each hidden layer's eligible mask."""
        widths = (d_in, *self.structure)
        chosen = [(self.w1_nnz, self.w1_mask), (self.w2_nnz, self.w2_mask), (self.w3_nnz, self.w3_mask)]
        return [(i, o, nnz, index) for (i, o), (nnz, index) in zip(zip(widths, widths[1:]), chosen)]


declare(
    "search_structure",
    StructureConfig,
    "methods.search:SearchStructure",
    targets_sparsity=False,
    packable=True,
    summary="combinatorial search, phase 1: the structure's top-left block, dense (stage search_structure only)",
)
declare(
    "search_mask",
    SearchMaskConfig,
    "methods.search:SearchMask",
    targets_sparsity=False,
    packable=True,
    summary="combinatorial search, phase 2: one eligible mask per hidden layer (stage search_masks only)",
)
