"""The published results of Gale, Elsen & Hooker (2019), "The State of Sparsity in Deep Neural Networks", as rows
of this project's `trials` table (README §Results), so the study can be set beside our own sweeps.

The data are the study's released CSVs (google-research/google-research, state_of_sparsity/results, Apache-2.0),
shipped verbatim under `analysis/reference_data/state_of_sparsity/` and found through the installed package.
`load_gale2019()` gives one row per run; for Transformer variational dropout one row per run × log-α threshold
(11 thresholds 0.0, 0.5, …, 5.0, each with its own BLEU and sparsity, `threshold` column), since the study treats
every (run, threshold) pair as a candidate. `published_best()` recomputes the study's best-per-sparsity tables with
`analysis.tables.best_per_cell`.

Also shipped: the study README's best-per-sparsity tables exactly as published (`published_readme()`,
`published_readme_wide()`; readme_best.csv, transcribed from papers/state-of-sparsity.md §3, values in the published
units), and the released lottery-ticket / scratch runs (scratch_lotto/ CSVs): `load_gale2019_lottery()` gives one
row per run, `published_lottery()` / `published_lottery_wide()` the max over runs per variant × level, as the
paper notes' §4.2 / §4.3 tables print it.

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

import csv
import functools
import hashlib
import io
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


# --- The study's README table, as published ------------------------------------------------------------------

README_BEST = "readme_best.csv"  # under reference_data/state_of_sparsity/; transcribed from papers/…md §3
# The published columns of each task's README table, in the published order: method key -> published header.
README_HEADERS = {
    TRANSFORMER: {"magnitude": "MP", "variational_dropout": "VD", "l0": "L0", "random": "Random"},
    RESNET50: {
        "magnitude": "MP (uniform, std schedule)",
        "magnitude_extended": "MP extended / non-uniform (1st layer dense)",
        "variational_dropout": "VD (thr 0.5)",
        "random": "Random",
        "l0": "L0",
    },
}
# the column labels of published_readme_wide (the dense baseline, in the README's caption, gets its own column)
README_WIDE_LABELS = {
    "magnitude": "magnitude",
    "magnitude_extended": "magnitude extended (first layer dense, 1.5x longer)",
    "variational_dropout": "variational_dropout",
    "l0": "l0",
    "random": "random",
    "dense": "dense",
}


def published_readme(task: str) -> pd.DataFrame:
    """The study README's "best per technique × sparsity" table of `task`, exactly as published.

    One row per published cell: task, method (magnitude, magnitude_extended, variational_dropout, l0, random,
    dense), target_sparsity (fraction; 0 for dense, 0.965 for the ResNet-50 extended-MP row "96.5%"), value (float,
    in the published units: Transformer BLEU points, ResNet-50 top-1 **percent**; NaN where the cell is "–" or
    "failed"), text (the cell as published, bold marks dropped, e.g. "72.71 (target 0.96)", "failed (≈0.1%)",
    "–"), note (the cell's annotation, e.g. "(target 0.96)", "(≈0.1%)"; "mean" / "max" for the dense baseline of
    the caption; "" if none) and bold (the README sets the row's best in bold). The Transformer's dense baseline is
    two rows (27.29 mean, 27.52 max of the 5 runs).
    """
    _check_task(task)
    return _readme_best()[lambda d: d["task"] == task].reset_index(drop=True)


def published_readme_wide(task: str) -> pd.DataFrame:
    """published_readme(task) as the README prints it: rows "50%", …, "98%" and last "dense"; one column per
    published column, labelled by README_WIDE_LABELS, plus "dense"; cells the published text ("" where the
    README has no entry; two dense texts in one cell are joined by " / ", e.g. "27.29 mean / 27.52 max")."""
    long = published_readme(task)
    columns = [*README_HEADERS[task], "dense"]
    levels = sorted(set(long["target_sparsity"]) - {0.0}) + [0.0]
    cells = long.groupby(["target_sparsity", "method"])["text"].agg(" / ".join)
    wide = pd.DataFrame(
        [[cells.get((s, m), "") for m in columns] for s in levels],
        index=[_level_label(s) for s in levels],
        columns=[README_WIDE_LABELS[m] for m in columns],
    )
    wide.index.name = "sparsity"
    return wide


@functools.cache
def _readme_best() -> pd.DataFrame:
    with (data_dir() / README_BEST).open("r", encoding="utf-8") as handle:
        raw = pd.read_csv(handle, dtype=str, keep_default_na=False)
    return pd.DataFrame(
        {
            "task": raw["task"],
            "method": raw["method"],
            "target_sparsity": raw["sparsity"].astype(float),
            "value": pd.to_numeric(raw["value"].replace("", None)).astype(float),
            "text": raw["text"],
            "note": raw["note"],
            "bold": raw["bold"].map({"true": True, "false": False}).astype(bool),
        }
    )


def _level_label(level: float) -> str:
    return "dense" if level == 0 else f"{round(100 * level, 6):g}%"


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


# --- The lottery-ticket / scratch runs (scratch_lotto/) --------------------------------------------------------

# this project's variant names (analysis.lth.ORDER, without "pruned"), then the ResNet-50 schedule variants
LOTTERY_VARIANTS = ("scratch_e", "scratch_b", "sparsity_aware_init", "scratch_b_sparsity_aware_init", "lottery")
LR_SCHEDULES = ("lr_constant_final", "lr_constant_decay", "lr_continual_decay")  # besides lr_scaled (the default)
LOTTERY_EXTRA_VARIANTS = tuple(
    f"{v} ({s})" for s in LR_SCHEDULES for v in ("scratch_b", "scratch_b_sparsity_aware_init")
)
LOTTERY_COLUMNS = {  # column -> pandas dtype; the mask's schedule columns are null where a file does not give them
    "task": "str",
    "variant": "str",
    "target_sparsity": "float64",
    "sparsity": "float64",
    "metric": "str",
    "value": "float64",
    "file": "str",
    "row": "Int64",
    "run": "Int64",
    "hparams_set": "str",
    "begin_step": "Int64",
    "end_step": "Int64",
    "frequency": "Int64",
    "label_smoothing": "float64",
    "regularization": "str",
    "threshold_decay": "float64",
    "time_multiplier": "Int64",
    "init_method": "str",
}
# (time multiplier, init method) -> variant, in the ResNet-50 scratch files
_RN_SCRATCH = {
    (1, "baseline"): "scratch_e",
    (1, "sparse"): "sparsity_aware_init",
    (2, "baseline"): "scratch_b",
    (2, "sparse"): "scratch_b_sparsity_aware_init",
}


@dataclass(frozen=True)
class _LottoFile:
    """One released scratch_lotto CSV."""

    task: str
    path: str  # under reference_data/state_of_sparsity/
    variant: str | None  # None: from time multiplier × init method (the ResNet-50 scratch files)
    value: str | None  # metric column; None: wide, one column per run ("Run 1" … "Run 9")
    schedule: str | None = None  # the ResNet-50 scratch files' learning-rate schedule other than lr_scaled
    blank_headers: dict[int, str] = field(default_factory=dict)  # position of a blank header -> its meaning


_T_LOTTO, _RN_LOTTO = "sparse_transformer/scratch_lotto", "sparse_rn50/scratch_lotto"
LOTTERY_FILES = (
    _LottoFile(TRANSFORMER, f"{_T_LOTTO}/transformer_lottery_ticket.csv", "lottery", "MOSES BLEU"),
    _LottoFile(TRANSFORMER, f"{_T_LOTTO}/transformer_scratche.csv", "scratch_e", "MOSES BLEU"),
    _LottoFile(TRANSFORMER, f"{_T_LOTTO}/transformer_scratchb.csv", "scratch_b", "MOSES BLEU"),
    _LottoFile(TRANSFORMER, f"{_T_LOTTO}/transformer_scratche_augmented_init.csv", "sparsity_aware_init", "MOSES BLEU"),
    _LottoFile(
        TRANSFORMER,
        f"{_T_LOTTO}/transformer_scratchb_augmented_init.csv",
        "scratch_b_sparsity_aware_init",
        "MOSES BLEU",
    ),
    _LottoFile(RESNET50, f"{_RN_LOTTO}/rn50_lottery_ticket.csv", "lottery", "accuracy"),
    _LottoFile(RESNET50, f"{_RN_LOTTO}/rn50_scratch_lr_scaled.csv", None, None),
    _LottoFile(RESNET50, f"{_RN_LOTTO}/rn50_scratch_lr_constant_final.csv", None, None, "lr_constant_final"),
    _LottoFile(
        RESNET50,
        f"{_RN_LOTTO}/rn50_scratch_lr_constant_decay.csv",
        None,
        "accuracy",
        "lr_constant_decay",
        blank_headers={2: "init method"},
    ),
    _LottoFile(RESNET50, f"{_RN_LOTTO}/rn50_scratch_lr_continual_decay.csv", None, "accuracy", "lr_continual_decay"),
)
_LOTTO_HEADERS = {
    "Tensor2Tensor HParams": "hparams_set",
    "HParams": "hparams_set",  # transformer_lottery_ticket.csv
    "begin_pruning_step": "begin_step",
    "end_pruning_step": "end_step",
    "pruning_frequency": "frequency",
    "regularization": "regularization",
    "threshold_decay": "threshold_decay",
    "begin": "begin_step",
    "end": "end_step",
    "freq": "frequency",
    "label smoothing": "label_smoothing",
    "time multiplier": "time_multiplier",
    "init method": "init_method",
}


def load_gale2019_lottery(task: str | None = None) -> pd.DataFrame:
    """The study's lottery-ticket and scratch runs (one task, or both), one row per run.

    Columns (LOTTERY_COLUMNS): task; variant (this project's names, see LOTTERY_VARIANTS and
    LOTTERY_EXTRA_VARIANTS); target_sparsity (the nominal level, a fraction); sparsity (achieved: the Transformer
    CSVs give it; the ResNet-50 ones give only the target, taken as achieved); metric ("bleu_tokenized" or
    "top1") and value (Transformer BLEU points; ResNet-50 top-1 as a fraction, as load_gale2019); file (the CSV's
    name); row (its data-row index, from 0); run (from 1: the `Run k` column number in the wide files, else the
    position within the file's (variant, target_sparsity) group); the mask's schedule columns where a file gives
    them. Empty values are skipped (there are none); diverged runs at 0 BLEU are kept.
    """
    if task is not None:
        _check_task(task)
    return _lottery_all(task).copy()


def published_lottery(task: str) -> pd.DataFrame:
    """The study's lottery/scratch tables of `task` recomputed from the CSVs (papers/state-of-sparsity.md §4.2,
    §4.3): per (variant, target_sparsity) the max over runs (value, in load_gale2019_lottery's units), the run
    count (runs), the file and the metric; variants in LOTTERY_VARIANTS order, then LOTTERY_EXTRA_VARIANTS."""
    runs = load_gale2019_lottery(task)
    best = (
        runs.groupby(["variant", "target_sparsity"])
        .agg(value=("value", "max"), runs=("value", "size"), file=("file", "first"), files=("file", "nunique"))
        .reset_index()
    )
    if (best["files"] != 1).any():  # pragma: no cover - each variant comes from one file
        raise AssertionError("a lottery variant × level spans several files")
    order = {v: i for i, v in enumerate((*LOTTERY_VARIANTS, *LOTTERY_EXTRA_VARIANTS))}
    best = best.sort_values(["variant", "target_sparsity"], key=lambda c: c.map(order) if c.name == "variant" else c)
    best.insert(0, "task", task)
    best["metric"] = METRICS[task]
    return best.drop(columns="files").reset_index(drop=True)


PUBLISHED_MP_COLUMN = "pruned (published MP)"


def published_lottery_wide(task: str, runs: bool = False) -> pd.DataFrame:
    """published_lottery(task) as the study's tables print it: rows "50%", …; columns "pruned (published MP)"
    (published_readme's magnitude column), then the variants in analysis.lth.ORDER, then the ResNet-50 schedule
    variants; cells the max formatted as published (Transformer BLEU, ResNet-50 top-1 in percent, 2 decimals), ""
    where there is no run. runs=True gives the parallel frame of run counts instead (same rows and columns,
    Int64, <NA> where there is no run and in the published-MP column)."""
    best = published_lottery(task)
    mp = published_readme(task).query("method == 'magnitude'").dropna(subset=["value"])
    variants = [v for v in (*LOTTERY_VARIANTS, *LOTTERY_EXTRA_VARIANTS) if v in set(best["variant"])]
    levels = sorted(set(best["target_sparsity"]) | set(mp["target_sparsity"]))
    scale = 100.0 if task == RESNET50 else 1.0
    cell = best.set_index(["variant", "target_sparsity"])
    if runs:
        data = {PUBLISHED_MP_COLUMN: pd.array([pd.NA] * len(levels), dtype="Int64")}
        for v in variants:
            data[v] = pd.array([cell["runs"].get((v, s), pd.NA) for s in levels], dtype="Int64")
    else:
        published = dict(zip(mp["target_sparsity"], mp["value"]))
        data = {PUBLISHED_MP_COLUMN: [f"{published[s]:.2f}" if s in published else "" for s in levels]}
        for v in variants:
            data[v] = [f"{scale * cell['value'][v, s]:.2f}" if (v, s) in cell.index else "" for s in levels]
    wide = pd.DataFrame(data, index=[_level_label(s) for s in levels])
    wide.index.name = "sparsity"
    return wide


@functools.cache
def _lottery_all(task: str | None) -> pd.DataFrame:
    frame = pd.concat([_lottery_rows(f) for f in LOTTERY_FILES if task in (None, f.task)], ignore_index=True)
    for column in LOTTERY_COLUMNS:
        if column not in frame:
            frame[column] = None
    return frame[list(LOTTERY_COLUMNS)].astype(LOTTERY_COLUMNS)


def _lottery_rows(f: _LottoFile) -> pd.DataFrame:
    """The runs of one scratch_lotto CSV, one row per run."""
    with (data_dir() / f.path).open("r", encoding="utf-8") as handle:
        text = handle.read()
    header = next(csv.reader(io.StringIO(text)))
    for position, name in f.blank_headers.items():
        if header[position].strip():
            raise ValueError(f"{f.path}: header {position} is {header[position]!r}, expected blank")
        header[position] = name
    raw = pd.read_csv(io.StringIO(text), header=0, names=header)
    raw.insert(0, "row", raw.index)
    sparsity = "Sparsity" if "Sparsity" in raw else "sparsity"
    keep = ["row", sparsity, *[c for c in raw.columns if c in _LOTTO_HEADERS]]
    if f.value is None:
        run_columns = [c for c in raw.columns if c.startswith("Run ")]
        long = raw.melt(id_vars=keep, value_vars=run_columns, var_name="run", value_name="value")
        long["run"] = long["run"].str.removeprefix("Run ").astype(int)
        long = long.sort_values(["row", "run"], kind="stable")
    else:
        long = raw[keep].assign(value=raw[f.value])
    long = long.rename(columns={**_LOTTO_HEADERS, sparsity: "sparsity"})
    long["sparsity"] = long["sparsity"].astype(float)
    if f.task == TRANSFORMER:  # achieved sparsity (e.g. 0.980001): assign the nominal level by the level rule
        long["target_sparsity"] = nominal_level(long["sparsity"], LEVELS[f.task])
        if long["target_sparsity"].isna().any():
            raise ValueError(f"{f.path}: a run's sparsity is at no nominal level")
    else:  # the ResNet-50 files give the target only
        long["target_sparsity"] = long["sparsity"]
    long["variant"] = f.variant if f.variant else _rn50_scratch_variants(long, f)
    if f.value is not None:
        long["run"] = long.groupby(["variant", "target_sparsity"]).cumcount() + 1
    long = long.dropna(subset=["value"])
    return long.assign(task=f.task, metric=METRICS[f.task], file=f.path.rsplit("/", 1)[-1]).reset_index(drop=True)


def _rn50_scratch_variants(frame: pd.DataFrame, f: _LottoFile) -> list[str]:
    variants = []
    for multiplier, init in zip(frame["time_multiplier"], frame["init_method"]):
        variant = _RN_SCRATCH[int(multiplier), init]
        if f.schedule:
            if int(multiplier) != 2:
                raise ValueError(f"{f.path}: time multiplier {multiplier}, expected 2")
            variant = f"{variant} ({f.schedule})"
        variants.append(variant)
    return variants
