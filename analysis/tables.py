"""Method x sparsity tables: best over hyper-parameters per cell, mean +- std over seeds."""

from __future__ import annotations

import math

import pandas as pd

CELL = ["task", "method", "target_sparsity"]
PERCENT_METRICS = {"accuracy", "top1", "top5"}
AUDIT_TOLERANCE = 0.005  # achieved sparsity may miss the target by at most half a point


def per_config(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, config_hash): mean and std over the completed seeds."""
    done = trials[trials["status"] == "completed"]
    grouped = done.groupby(CELL + ["config_hash", "metric", "mode"], dropna=False)
    out = grouped.agg(value_mean=("value", "mean"), value_std=("value", "std"), seeds=("seed", "nunique"),
                      sparsity_mean=("sparsity", "mean"), sparsity_min=("sparsity", "min"),
                      sparsity_max=("sparsity", "max")).reset_index()
    out["value_std"] = out["value_std"].fillna(0.0)
    return out


def best_per_cell(trials: pd.DataFrame) -> pd.DataFrame:
    """For each task x method x target sparsity, the configuration with the best mean metric over seeds."""
    configs = per_config(trials)
    if configs.empty:
        return configs
    sign = configs["mode"].map({"max": -1.0, "min": 1.0})
    configs = configs.assign(_key=sign * configs["value_mean"]).sort_values(CELL + ["_key", "config_hash"])
    counts = configs.groupby(CELL).size().rename("configs")
    best = configs.groupby(CELL, as_index=False).head(1).drop(columns="_key")
    return best.merge(counts, left_on=CELL, right_index=True).reset_index(drop=True)


def format_value(metric: str, mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    if metric in PERCENT_METRICS:
        return f"{100 * mean:.2f} ± {100 * std:.2f}"
    return f"{mean:.4g} ± {std:.2g}"


def wide_table(best: pd.DataFrame) -> pd.DataFrame:
    """Rows: target sparsity; columns: methods; cells: 'mean ± std (achieved sparsity)'."""
    cells = best.assign(cell=[
        format_value(r.metric, r.value_mean, r.value_std) + ("" if r.method == "dense" else f" ({r.sparsity_mean:.3f})")
        for r in best.itertuples()])
    wide = cells.pivot_table(index="target_sparsity", columns="method", values="cell", aggfunc="first")
    wide = wide.fillna("")
    wide.index = [f"{t:g}" if t > 0 else "0 (dense)" for t in wide.index]
    wide.index.name = "target sparsity"
    return wide


def audit(trials: pd.DataFrame, tolerance: float = AUDIT_TOLERANCE) -> pd.DataFrame:
    """Completed trials whose achieved sparsity misses their target by more than `tolerance`."""
    done = trials[(trials["status"] == "completed") & (trials["method"] != "dense")]
    miss = (done["sparsity"] - done["target_sparsity"]).abs()
    return done.loc[miss > tolerance, ["trial_id", "method", "target_sparsity", "sparsity"]].assign(
        miss=miss[miss > tolerance])


def to_markdown(df: pd.DataFrame, index: bool = True) -> str:
    frame = df.reset_index() if index else df
    header = [str(c) for c in frame.columns]
    rows = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
