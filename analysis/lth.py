"""The lottery-ticket / scratch study (State of Sparsity §4): at each sparsity, the pruned model (the mask
source) against each way of training its mask again: scratch-e, scratch-b, sparsity-aware init, lottery ticket.

Each cell is the best configuration over hyper-parameters (for a child: over its parents' configurations), by
mean over seeds; mean ± std over seeds is shown, as in the method × sparsity table."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from analysis import tables
from analysis.document import Block, Figure, Table

ORDER = ["pruned", "scratch_e", "scratch_b", "sparsity_aware_init", "scratch_b_sparsity_aware_init", "lottery"]
KEYS = ["stage", "parent_method", "target_sparsity", "variant"]


def has_stages(trials: pd.DataFrame) -> bool:
    return "stage" in trials and trials["stage"].fillna("main").ne("main").any()


def _labels(kids: pd.DataFrame) -> list:
    """Each child's variant, a lottery ticket rewound to step k labelled 'lottery (rewind k)'."""
    labels = kids["variant"].tolist()
    if "rewind_step" in kids:
        rewind = kids["rewind_step"]
        rewound = (kids["variant"] == "lottery") & rewind.notna() & (rewind > 0)
        for i in np.flatnonzero(rewound.to_numpy()):
            labels[i] = f"lottery (rewind {int(rewind.iloc[i])})"
    return labels


def seed_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """Completed rows of every child stage and of the parents they came from, labelled with the child stage,
    the parent's method and the variant ('pruned' for the parents themselves)."""
    done = trials[trials["status"] == "completed"]
    method_of = trials.drop_duplicates("trial_id").set_index("trial_id")["method"]
    parts = []
    for stage, kids in done[done["stage"].fillna("main") != "main"].groupby("stage"):
        kids = kids.assign(
            stage=stage,
            parent_method=kids["parent_trial_id"].map(method_of),
            variant=_labels(kids),
        )
        parents = done[done["trial_id"].isin(set(kids["parent_trial_id"]))]
        parts += [kids, parents.assign(stage=stage, parent_method=parents["method"], variant="pruned")]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*KEYS, "value"])


def study(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (child stage, parent method, target sparsity, variant): the best configuration's mean, std
    and seed count, and how many configurations competed."""
    rows = seed_rows(trials)
    if rows.empty:
        return pd.DataFrame(columns=[*KEYS, "value_mean", "value_std", "seeds", "configs", "metric", "config_hash"])
    grouped = rows.groupby([*KEYS, "config_hash", "metric", "mode"], dropna=False)
    configs = grouped.agg(value_mean=("value", "mean"), value_std=("value", "std"), seeds=("seed", "nunique"))
    configs = configs.reset_index()
    configs["value_std"] = configs["value_std"].fillna(0.0)
    sign = configs["mode"].map({"max": -1.0, "min": 1.0})
    configs = configs.assign(_key=sign * configs["value_mean"]).sort_values([*KEYS, "_key", "config_hash"])
    counts = configs.groupby(KEYS, dropna=False).size().rename("configs")
    best = configs.groupby(KEYS, as_index=False, dropna=False).head(1).drop(columns="_key")
    best = best.merge(counts, left_on=KEYS, right_index=True).reset_index(drop=True)
    order = {v: i for i, v in enumerate(ORDER)}
    best["_order"] = best["variant"].map(lambda v: order.get(v, order.get(v.split(" ")[0], len(ORDER))))
    return best.sort_values(["stage", "parent_method", "target_sparsity", "_order", "variant"]).drop(columns="_order")


def wide(best: pd.DataFrame) -> pd.DataFrame:
    """Rows: (stage, parent method, sparsity); columns: pruned, then the variants; cells 'mean ± std'."""
    cells = best.assign(
        cell=[tables.format_value(r.metric, r.value_mean, r.value_std) for r in best.itertuples()],
        row=[f"{r.stage}: {r.parent_method} at {r.target_sparsity:g}" for r in best.itertuples()],
    )
    columns = list(dict.fromkeys(cells["variant"]))
    table = cells.pivot_table(index="row", columns="variant", values="cell", aggfunc="first").fillna("")
    table = table.reindex(index=list(dict.fromkeys(cells["row"])), columns=columns)
    table.index.name = "mask source (stage: method at sparsity)"
    table.columns.name = None
    return table


def pruned_beats(best: pd.DataFrame, variant: str, at_least: float) -> pd.DataFrame:
    """Per (stage, parent method, sparsity >= at_least): the pruned model's and `variant`'s means, and whether the
    pruned one is better (by the metric's direction)."""
    pivot = best.pivot_table(
        index=["stage", "parent_method", "target_sparsity"], columns="variant", values="value_mean", aggfunc="first"
    )
    if variant not in pivot or "pruned" not in pivot:
        return pd.DataFrame(columns=["pruned", variant, "pruned_better"])
    mode = best["mode"].iloc[0]
    out = pivot.loc[pivot.index.get_level_values("target_sparsity") >= at_least, ["pruned", variant]].dropna()
    better = out["pruned"] > out[variant] if mode == "max" else out["pruned"] < out[variant]
    return out.assign(pruned_better=better)


def section(trials: pd.DataFrame, folder: str) -> list[Block]:
    """The report's lottery-ticket section (markdown lines), with its plot written into `folder`; [] when the
    sweep has no dependent stage."""
    if not has_stages(trials):
        return []
    best = study(trials)
    if best.empty:
        return ["## Lottery ticket and scratch retraining", "", "(no completed child trials yet)", ""]
    best.to_csv(os.path.join(folder, "lottery.csv"), index=False)
    from analysis import plots  # matplotlib only when drawing (the CLI imports this module for every command)

    plots.lth_bars(seed_rows(trials), best, os.path.join(folder, "lottery.png"))
    lines = [
        "## Lottery ticket and scratch retraining",
        "",
        "Each child trains its parent's final masks, fixed, from: fresh weights (scratch_e; scratch_b trains "
        "longer), fresh weights scaled for the mask's fan-in (sparsity_aware_init), or the parent's own initial "
        "weights (lottery; 'rewind k': its weights after step k). 'pruned' is the parent itself. Best configuration "
        "per cell, mean ± std over seeds.",
        "",
        Table(wide(best)),
        "",
        Figure("lottery.png", "lottery ticket study"),
        "",
    ]
    verdict = pruned_beats(best, "scratch_e", 0.8)
    if not verdict.empty:
        wins = int(verdict["pruned_better"].sum())
        lines += [f"At sparsity >= 0.8 the pruned model beats scratch_e in {wins} of {len(verdict)} cells.", ""]
    return lines
