"""Method x sparsity tables: best over hyper-parameters per cell, mean +- std over seeds."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

CELL = ["task", "method", "target_sparsity"]
# Methods that learn their sparsity (VD, L0) have no target: a run counts at a nominal level when its achieved
# sparsity is within LEVEL_TOLERANCE of it -- the rule that reproduces the State of Sparsity's published tables
# from its released CSVs (docs/reference-data.md). Other runs are shown as points but enter no table cell.
LEVEL_TOLERANCE = 0.003
STUDY_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
_EPS = 1e-9  # so that a distance of exactly LEVEL_TOLERANCE counts despite float rounding (0.803 - 0.8 > 0.003)
PERCENT_METRICS = {"accuracy", "top1", "top5"}
AUDIT_TOLERANCE = 0.005  # achieved sparsity may miss the target by at most half a point


def select_metric(trials: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The rows of one metric: `metric`, or else each task's primary one. A task that evaluates several metrics
    (e.g. the Transformer's two BLEU scores) writes one row per metric; files written before the `primary`
    column existed hold one metric only. Rows of trials that never evaluated (failed) are always kept."""
    if trials.empty or "metric" not in trials:
        return trials
    primary = trials["primary"].fillna(True).astype(bool) if "primary" in trials else pd.Series(True, trials.index)
    unevaluated = trials["status"].ne("completed") & primary
    if metric is None:
        return trials[primary]
    available = sorted(trials.loc[trials["status"] == "completed", "metric"].dropna().unique())
    if metric not in available:
        raise ValueError(f"no metric {metric!r} in these results; they have: {', '.join(available) or 'none'}")
    return trials[trials["metric"].eq(metric) | unevaluated]


def nominal_level(sparsity: Any, levels: tuple[float, ...], tolerance: float = LEVEL_TOLERANCE) -> np.ndarray:
    """The nominal level within `tolerance` of each achieved sparsity (NaN where none is): the study's rule."""
    achieved = np.asarray(sparsity, dtype=float)
    out = np.full(achieved.shape, np.nan)
    for level in levels:
        out[np.abs(achieved - level) <= tolerance + _EPS] = level
    return out


def assign_levels(trials: pd.DataFrame, tolerance: float = LEVEL_TOLERANCE) -> pd.DataFrame:
    """Fill the target of rows without one (learned sparsity) with the nominal level of their achieved sparsity.

    Levels are the sweep's own targets (of the methods that have one), else the study's levels.
    """
    if trials.empty or trials["target_sparsity"].notna().all():
        return trials
    targets = trials["target_sparsity"].dropna()
    levels = tuple(sorted(set(targets[targets > 0]))) or STUDY_LEVELS
    missing = trials["target_sparsity"].isna()
    filled = trials.copy()
    filled.loc[missing, "target_sparsity"] = nominal_level(trials.loc[missing, "sparsity"], levels, tolerance)
    return filled


def per_config(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, config_hash): mean and std over the completed seeds."""
    keys = CELL + ["config_hash", "metric", "mode"]
    done = trials.loc[trials["status"] == "completed", keys + ["value", "seed", "sparsity"]]  # copy no other column
    grouped = done.groupby(keys, dropna=False)
    out = grouped.agg(
        value_mean=("value", "mean"),
        value_std=("value", "std"),
        seeds=("seed", "nunique"),
        sparsity_mean=("sparsity", "mean"),
        sparsity_min=("sparsity", "min"),
        sparsity_max=("sparsity", "max"),
    ).reset_index()
    out["value_std"] = out["value_std"].fillna(0.0)
    return out


def best_per_cell(trials: pd.DataFrame) -> pd.DataFrame:
    """For each task x method x target sparsity, the configuration with the best mean metric over seeds.

    Rows without a target (learned sparsity) must have been placed at levels first (assign_levels); those
    that fit no level are left out.
    """
    configs = per_config(trials[trials["target_sparsity"].notna()])
    if configs.empty:
        return configs
    sign = configs["mode"].map({"max": -1.0, "min": 1.0})
    configs = configs.assign(_key=sign * configs["value_mean"]).sort_values(CELL + ["_key", "config_hash"])
    counts = configs.groupby(CELL).size().rename("configs")
    best = configs.groupby(CELL, as_index=False).head(1).drop(columns="_key")
    return best.merge(counts, left_on=CELL, right_index=True).reset_index(drop=True)


def pareto(configs: pd.DataFrame) -> pd.DataFrame:
    """Per method, the configurations no other one beats on both achieved sparsity and metric (per_config rows)."""
    keep = []
    for _, group in configs.groupby("method"):
        sign = -1.0 if group["mode"].iloc[0] == "max" else 1.0
        ordered = group.sort_values(["sparsity_mean", "value_mean"], ascending=[False, sign > 0])
        score = sign * ordered["value_mean"]
        before = score.fillna(math.inf).cummin().shift(fill_value=math.inf)  # best of the sparser ones (NaN: none)
        keep += list(ordered.index[score < before])
    return configs.loc[keep].sort_values(["method", "sparsity_mean"])


# How a figure's axis names each metric, in its own unit (the tables show fractions as percent: format_value)
METRIC_UNITS = {
    "accuracy": "accuracy (fraction of test points correct, 0-1)",
    "top1": "top-1 accuracy (fraction of validation images, 0-1)",
    "top5": "top-5 accuracy (fraction of validation images, 0-1)",
    "bleu_tokenized": "tokenized BLEU (points, 0-100)",
    "sacrebleu": "sacreBLEU (points, 0-100)",
}


def metric_label(metric: str) -> str:
    return METRIC_UNITS.get(metric, metric)


def format_value(metric: str, mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    if metric in PERCENT_METRICS:
        return f"{100 * mean:.2f} ± {100 * std:.2f}"
    return f"{mean:.4g} ± {std:.2g}"


def level_label(target: float) -> str:
    """A target sparsity as the method x sparsity table labels its row."""
    return f"{target:g}" if target > 0 else "0 (dense)"


def wide_table(best: pd.DataFrame) -> pd.DataFrame:
    """Rows: target sparsity; columns: methods; cells: 'mean ± std (achieved sparsity)'."""
    cells = best.assign(
        cell=[
            format_value(r.metric, r.value_mean, r.value_std)
            + ("" if r.method == "dense" else f" ({r.sparsity_mean:.3f})")
            for r in best.itertuples()
        ]
    )
    wide = cells.pivot_table(index="target_sparsity", columns="method", values="cell", aggfunc="first")
    wide = wide.fillna("")
    wide.index = [level_label(t) for t in wide.index]
    wide.index.name = "target sparsity"
    return wide


def audit(trials: pd.DataFrame, tolerance: float = AUDIT_TOLERANCE) -> pd.DataFrame:
    """Completed trials whose achieved sparsity misses their target by more than `tolerance`."""
    columns = ["trial_id", "method", "target_sparsity", "sparsity"]
    done = trials.loc[(trials["status"] == "completed") & (trials["method"] != "dense"), columns]
    miss = (done["sparsity"] - done["target_sparsity"]).abs()
    return done.loc[miss > tolerance, columns].assign(miss=miss[miss > tolerance])


def to_markdown(df: pd.DataFrame, index: bool = True) -> str:
    frame = df.reset_index() if index else df
    header = [str(c) for c in frame.columns]
    rows = [[cell_text(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def cell_text(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
