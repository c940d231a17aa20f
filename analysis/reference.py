"""The published results of Gale, Elsen & Hooker (2019), "The State of Sparsity in Deep Neural Networks", as rows
of this project's `trials` table (README §Results), so the study can be set beside our own sweeps.

The data are the study's released CSVs (google-research/google-research, state_of_sparsity/results, Apache-2.0),
shipped verbatim under `analysis/reference_data/state_of_sparsity/` and found through the installed package.
`load_gale2019()` gives one row per run; for Transformer variational dropout one row per run × log-α threshold
(11 thresholds 0.0, 0.5, …, 5.0, each with its own BLEU and sparsity, `threshold` column), since the study treats
every (run, threshold) pair as a candidate. `published_best()` recomputes the study's best-per-sparsity tables with
`analysis.tables.best_per_cell`.

Mapping (details and the full check in docs/reference-data.md):

- sweep and source "gale2019"; task "resnet50_imagenet" or "transformer_wmt14_ende"; method "magnitude",
  "random", "variational_dropout", "l0" or "dense" (the baselines); status "completed" for every row, the
  collapsed ResNet-50 L0 runs (chance accuracy) included: they are real finished runs. seed is null (the study
  does not record seeds), stage "main", steps only where a CSV gives them (the baselines).
- metric "top1" (ResNet-50, a fraction in [0, 1]; rn50_baselines.csv is in percent and is divided by 100) or
  "bleu_tokenized" (Transformer, BLEU points), mode "max".
- sparsity is the achieved sparsity as a fraction. The ResNet-50 magnitude and random pruning CSVs give only the
  target sparsity; for them the target is used as the achieved sparsity (the study's MP runs reach their target
  to within 0.1 point where the Transformer CSVs show it).
- Hyper-parameters get one snake_case column each (begin_step, end_step, frequency, label_smoothing, ...).
  In rn50_l0_regularization.csv the headers `label_smoothing` and `weight_decay` are swapped (the former holds
  {0, ~1e-4}, the latter {0, 0.1}); they are read the other way round. The ResNet-50 VD rows get threshold 0.5
  (the study's README: "log alpha threshold ... was 0.5 for all our models"; not a CSV column).
- config_hash is the md5 of task, method, target sparsity (methods that aim at one) and the row's hyper-parameters,
  as in sweep.plan.config_hash; the five dense baseline runs share one configuration, so their mean is reported.

Level-assignment rule (found by computing, see docs/reference-data.md): a run whose achieved sparsity lies within
LEVEL_TOLERANCE = 0.003 (0.3 percentage points) of a nominal level gets that level as target_sparsity; a run
outside every band gets none (null) and takes part in no best-per-level cell. Levels are 50, 60, 70, 80, 90, 95 and
98% for the Transformer and 50, 70, 80, 90, 95 and 98% for ResNet-50. The rule is applied wherever a CSV gives the
achieved sparsity: VD and L0 on both models, and Transformer MP/RP, whose CSVs give only the achieved sparsity
(every one within 0.001 of its level). With it, the best per method × level equals every value of the study's
published tables (papers/state-of-sparsity.md §3) that the CSVs contain; every tolerance in [0.00274, 0.00300]
does, and the nearest-level, floor, ceiling, rounding-to-2-decimals and wider or narrower bands do not.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from typing import Any

import numpy as np
import pandas as pd

from analysis.tables import LEVEL_TOLERANCE, best_per_cell, nominal_level  # noqa: F401 (re-exported)

SOURCE = "gale2019"
RESNET50 = "resnet50_imagenet"
TRANSFORMER = "transformer_wmt14_ende"
TASKS = (RESNET50, TRANSFORMER)
METRICS = {RESNET50: "top1", TRANSFORMER: "bleu_tokenized"}
METRIC_DETAILS = {
    TRANSFORMER: "newstest2014; moses replace-unicode-punctuation + tokenizer -l de + ATAT compound split; multi-bleu"
}
LEVELS = {TRANSFORMER: (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98), RESNET50: (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)}
VD_THRESHOLDS = tuple(0.5 * i for i in range(11))
TARGETED = ("magnitude", "random")  # methods that aim at a target sparsity (part of their configuration)

# pandas dtypes of the trials columns this module fills (the Arrow types of trainables.records.results.COLUMNS["trials"])
TRIAL_DTYPES = {
    "sweep": "str",
    "trial_id": "str",
    "parent_trial_id": "str",
    "stage": "str",
    "task": "str",
    "method": "str",
    "seed": "Int64",
    "config_hash": "str",
    "target_sparsity": "float64",
    "target_nnz": "Int64",
    "source": "str",
    "status": "str",
    "metric": "str",
    "primary": "bool",
    "metric_detail": "str",
    "mode": "str",
    "value": "float64",
    "sparsity": "float64",
    "nnz_weights": "Int64",
    "nnz_model": "Int64",
    "in_degree_zero": "Int64",
    "out_degree_zero": "Int64",
    "effective_weights": "Int64",
    "ineffective_weights": "Int64",
    "paths": "Int64",
    "steps": "Int64",
    "wall_time_s": "float64",
}
# one column per hyper-parameter, with its kind (as trainables.records.results.ARROW_TYPES names them)
HP_KINDS = {
    "hparams_set": "str",
    "dataset": "str",
    "batch_size": "int",
    "begin_step": "int",
    "end_step": "int",
    "frequency": "int",
    "regularization": "str",
    "threshold_decay": "float",
    "label_smoothing": "float",
    "weight_decay": "float",
    "dkl_weight": "float",
    "dkl_weight_fn": "str",
    "dkl_weight_start": "int",
    "dkl_weight_diff": "int",
    "l0_norm_weight": "float",
    "l0_norm_weight_fn": "str",
    "initial_log_alpha": "float",
    "threshold": "float",
}
_PANDAS_KIND = {"str": "str", "int": "Int64", "float": "float64"}


@dataclass(frozen=True)
class _File:
    """One released CSV and how its columns map onto the trials table."""

    task: str
    method: str
    path: str  # under reference_data/state_of_sparsity/
    value: str  # metric column (for Transformer VD: prefix of the per-threshold columns)
    sparsity: str | None = None  # achieved-sparsity column
    target: str | None = None  # target-only sparsity column: achieved is taken equal to it
    columns: dict[str, str] = field(default_factory=dict)  # CSV header -> our column
    constants: dict[str, Any] = field(default_factory=dict)  # hyper-parameters the CSV does not list
    value_scale: float = 1.0
    per_threshold: bool = False  # Transformer VD: metric and sparsity columns per log-alpha threshold

    @property
    def model(self) -> str:
        return "rn50" if self.task == RESNET50 else "transformer"


_T2T = {"Tensor2Tensor HParams": "hparams_set", "regularization": "regularization"}
_T_PRUNING = {
    **_T2T,
    "begin_pruning_step": "begin_step",
    "end_pruning_step": "end_step",
    "pruning_frequency": "frequency",
    "threshold_decay": "threshold_decay",
}
_RN_PRUNING = {"begin": "begin_step", "end": "end_step", "freq": "frequency", "label smoothing": "label_smoothing"}
_T_DIR, _RN_DIR = "sparse_transformer/technique_comparison", "sparse_rn50/technique_comparison"
FILES = (
    _File(
        TRANSFORMER,
        "dense",
        f"{_T_DIR}/transformer_baselines.csv",
        "MOSES BLEU",
        columns={
            "Tensor2Tensor HParams": "hparams_set",
            "Training Steps": "steps",
            "Batch Size": "batch_size",
            "Dataset": "dataset",
        },
    ),
    _File(
        TRANSFORMER,
        "magnitude",
        f"{_T_DIR}/transformer_magnitude_pruning.csv",
        "Moses BLEU",
        "Sparsity",
        columns=_T_PRUNING,
    ),
    _File(
        TRANSFORMER, "random", f"{_T_DIR}/transformer_random_pruning.csv", "Moses BLEU", "Sparsity", columns=_T_PRUNING
    ),
    _File(
        TRANSFORMER,
        "variational_dropout",
        f"{_T_DIR}/transformer_variational_dropout.csv",
        "MOSES BLEU",
        "Sparsity",
        columns={
            "Tensor2Tensor Hparams": "hparams_set",
            "regularization": "regularization",
            "dkl_weight": "dkl_weight",
            "dkl_weight_fn": "dkl_weight_fn",
            "dkl_weight_start": "dkl_weight_start",
            "dkl_weight_diff": "dkl_weight_diff",
        },
        per_threshold=True,
    ),
    _File(
        TRANSFORMER,
        "l0",
        f"{_T_DIR}/transformer_l0_regularization.csv",
        "MOSES BLEU",
        "Sparsity",
        columns={
            **_T2T,
            "l0_norm_weight": "l0_norm_weight",
            "l0_norm_weight_fn": "l0_norm_weight_fn",
            "dkl_weight_start": "dkl_weight_start",
            "dkl_weight_diff": "dkl_weight_diff",
        },
    ),
    _File(
        RESNET50,
        "dense",
        f"{_RN_DIR}/rn50_baselines.csv",
        "Accuracy",
        value_scale=0.01,
        columns={"Training Steps": "steps", "Batch Size": "batch_size"},
    ),
    _File(
        RESNET50,
        "magnitude",
        f"{_RN_DIR}/rn50_magnitude_pruning.csv",
        "accuracy",
        target="Sparsity",
        columns=_RN_PRUNING,
    ),
    _File(
        RESNET50,
        "random",
        f"{_RN_DIR}/rn50_random_pruning.csv",
        "accuracy",
        target="Target Sparsity",
        columns=_RN_PRUNING,
    ),
    _File(
        RESNET50,
        "variational_dropout",
        f"{_RN_DIR}/rn50_variational_dropout.csv",
        "Accuracy",
        "global sparsity",
        constants={"threshold": 0.5},
        columns={
            "DKL loss begin": "begin_step",
            "DKL loss saturate": "end_step",
            "DKL loss coeff": "dkl_weight",
            "label_smoothing": "label_smoothing",
        },
    ),
    _File(
        RESNET50,
        "l0",
        f"{_RN_DIR}/rn50_l0_regularization.csv",
        "accuracy",
        "global_sparsity",
        columns={
            "initial_log_alpha": "initial_log_alpha",
            "l0_norm_weight": "l0_norm_weight",
            "label_smoothing": "weight_decay",
            "weight_decay": "label_smoothing",
        },
    ),  # headers swapped
)


def data_dir() -> Traversable:
    """The folder of the shipped CSVs, found through the installed `analysis` package."""
    return resources.files("analysis") / "reference_data" / "state_of_sparsity"


def load_gale2019(task: str | None = None) -> pd.DataFrame:
    """All released runs of the study (one task, or both) as rows of the trials table (see the module docstring)."""
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return _load_all(task).copy()


def published_best(task: str) -> pd.DataFrame:
    """The study's best-per-sparsity table of `task`, recomputed from its CSVs.

    One row per method × nominal level (and the dense baseline at level 0), chosen by
    analysis.tables.best_per_cell over the runs the level rule assigns to a level; the winning configuration's
    hyper-parameters are joined on. value_mean is in the trials table's units (ResNet-50 top-1 as a fraction).
    """
    trials = load_gale2019(task)
    best = best_per_cell(trials[trials["target_sparsity"].notna()])
    hps = [c for c in HP_KINDS if trials[c].notna().any()]
    configs = trials.drop_duplicates("config_hash")[["config_hash", *hps]]
    return best.merge(configs, on="config_hash", how="left")


@functools.cache
def _load_all(task: str | None) -> pd.DataFrame:
    frames = [_rows(f) for f in FILES if task in (None, f.task)]
    frame = pd.concat(frames, ignore_index=True)
    for column in [*TRIAL_DTYPES, *HP_KINDS]:
        if column not in frame:
            frame[column] = None
    return _typed(frame)[[*TRIAL_DTYPES, *HP_KINDS]]


def _rows(f: _File) -> pd.DataFrame:
    """The trials rows of one CSV."""
    with (data_dir() / f.path).open("r", encoding="utf-8") as handle:
        raw = pd.read_csv(handle)
    frame = _per_threshold(raw, f) if f.per_threshold else _per_run(raw, f)
    frame = frame.rename(columns=f.columns).assign(**f.constants)
    frame["value"] = frame["value"] * f.value_scale
    frame["target_sparsity"], frame["sparsity"] = _sparsities(frame, f)
    hps = [c for c in frame.columns if c in HP_KINDS]
    frame = _typed(frame)
    keys = _keys(frame, f, hps)
    return pd.concat([keys, frame.drop(columns=["_row"])], axis=1)


def _per_run(raw: pd.DataFrame, f: _File) -> pd.DataFrame:
    picked = {"_row": raw.index, "value": raw[f.value]}
    if f.sparsity or f.target:
        picked["_sparsity"] = raw[f.sparsity or f.target]
    return pd.DataFrame({**picked, **{c: raw[c] for c in f.columns}})


def _per_threshold(raw: pd.DataFrame, f: _File) -> pd.DataFrame:
    """Transformer VD: one row per (run, log-alpha threshold); empty cells are dropped."""
    parts = [
        pd.DataFrame(
            {
                "_row": raw.index,
                "threshold": t,
                "value": raw[f"{f.value}:{t:.1f}"],
                "_sparsity": raw[f"{f.sparsity}:{t:.1f}"],
                **{c: raw[c] for c in f.columns},
            }
        )
        for t in VD_THRESHOLDS
    ]
    long = pd.concat(parts).dropna(subset=["value", "_sparsity"])
    return long.sort_values(["_row", "threshold"], kind="stable").reset_index(drop=True)


def _sparsities(frame: pd.DataFrame, f: _File) -> tuple[pd.Series, pd.Series]:
    """(target_sparsity, achieved sparsity) of each row."""
    if f.method == "dense":
        zeros = pd.Series(0.0, index=frame.index)
        return zeros, zeros
    achieved = frame.pop("_sparsity").astype(float)
    if f.target:
        return achieved, achieved
    return pd.Series(nominal_level(achieved, LEVELS[f.task]), index=frame.index), achieved


def _keys(frame: pd.DataFrame, f: _File, hps: list[str]) -> pd.DataFrame:
    ids = [f"{SOURCE}-{f.model}-{f.method}-{row}" for row in frame["_row"]]
    if f.per_threshold:
        ids = [f"{i}-t{t:.1f}" for i, t in zip(ids, frame["threshold"])]
    hashes = [
        _config_hash(f, target, {k: r[k] for k in hps})
        for target, r in zip(frame["target_sparsity"], frame.to_dict("records"))
    ]
    return pd.DataFrame(
        {
            "sweep": SOURCE,
            "trial_id": ids,
            "parent_trial_id": None,
            "stage": "main",
            "task": f.task,
            "method": f.method,
            "seed": None,
            "config_hash": hashes,
            "source": SOURCE,
            "status": "completed",
            "metric": METRICS[f.task],
            "primary": True,
            "metric_detail": METRIC_DETAILS.get(f.task),
            "mode": "max",
            "wall_time_s": math.nan,
        },
        index=frame.index,
    )


def _config_hash(f: _File, target: float, hps: dict[str, Any]) -> str:
    parts = [f"task={f.task}", f"method={f.method}"]
    if f.method in TARGETED:
        parts.append(f"target_sparsity={float(target)!r}")
    parts += [f"{k}={_native(v)!r}" for k, v in sorted(hps.items()) if not pd.isna(v)]
    return hashlib.md5(",".join(parts).encode()).hexdigest()


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    dtypes = {**TRIAL_DTYPES, **{c: _PANDAS_KIND[k] for c, k in HP_KINDS.items()}}
    return frame.astype({c: dtypes[c] for c in frame.columns if c in dtypes})
