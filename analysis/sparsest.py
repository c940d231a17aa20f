"""The Sparsest-Models comparison (Zhang & Papyan 2024): for sweeps whose targets are numbers of kept weights
(a spec's `nnz`), accuracy against the measured Weight NNZ per algorithm, the smallest NNZ each reaches at the
study's accuracy targets, and the disconnected paths they leave (papers/sparsest-models.md §2.1, §5.4, §6).

Each point is the best run over the hyper-parameter grid and the repeats (seeds) at one (algorithm, model, target
NNZ), as the study's curves take it [its aggregation rule is not in its code; papers/sparsest-models.md §6], drawn
at that run's measured Weight NNZ (the study's thresholds land 1-2 off the target: plot against what was kept).
"""

from __future__ import annotations

import os

import pandas as pd

from analysis.document import Block, Figure, Table

COLUMNS = [
    "target_nnz",
    "nnz_weights",
    "nnz_model",
    "in_degree_zero",
    "out_degree_zero",
    "effective_weights",
    "ineffective_weights",
    "paths",
]
MODEL = ["width", "d1", "d2", "d3", "init"]  # the Cubist task's options that name a model (when present)
TARGETS = (0.95, 0.995)  # the study's accuracy targets (BENCH-95, BENCH-995)


def applies(trials: pd.DataFrame) -> bool:
    return "target_nnz" in trials and trials["target_nnz"].notna().any()


def model_label(trials: pd.DataFrame) -> pd.Series:
    """'width 3, bench95' or 'd 3-2-2, default' per row, from the model options the sweep has."""
    if "d1" in trials and (trials[["d1", "d2", "d3"]].fillna(0) > 0).any(axis=None):
        widths = [trials[d].where(trials[d].fillna(0) > 0, trials.get("width")) for d in ("d1", "d2", "d3")]
        shape = widths[0].astype("Int64").astype(str) + "-" + widths[1].astype("Int64").astype(str) + "-"
        shape = "d " + shape + widths[2].astype("Int64").astype(str)
    elif "width" in trials:
        shape = "width " + trials["width"].astype("Int64").astype(str)
    else:
        shape = pd.Series("model", index=trials.index)
    init = trials["init"].fillna("default") if "init" in trials else "default"
    return shape + ", " + init


def best_per_target(trials: pd.DataFrame) -> pd.DataFrame:
    """The best completed run per (model, method, target NNZ): its accuracy, measured counts and connectivity."""
    done = trials[(trials["status"] == "completed") & trials["target_nnz"].notna()].copy()
    if done.empty:
        return done
    done["model"] = model_label(done)
    done = done.sort_values(["value", "nnz_weights"], ascending=[False, True], kind="stable")
    return done.drop_duplicates(["model", "method", "target_nnz"]).sort_values(["model", "method", "target_nnz"])


def smallest(best: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per (model, method): the run with the fewest measured nonzero weights among those at or above `target`."""
    hit = best[best["value"] >= target].sort_values(["nnz_weights", "value"], ascending=[True, False], kind="stable")
    return hit.drop_duplicates(["model", "method"]).set_index(["model", "method"])


def section(trials: pd.DataFrame, folder: str) -> list[Block]:
    if not applies(trials):
        return []
    best = best_per_target(trials)
    if best.empty:
        return ["## Sparsest models", "", "(no completed trials with an `nnz` target yet)", ""]
    out = [
        "## Sparsest models: accuracy against nonzero weights",
        "",
        "Each point: the best run over hyper-parameters and seeds at one target number of kept weights (`nnz`), "
        "at its measured Weight NNZ (nonzero weights; Model NNZ adds the live biases). The study's thresholds "
        "keep 1-2 fewer than the target for some algorithms (papers/sparsest-models.md §4).",
        "",
    ]
    from analysis import plots

    plots.accuracy_vs_nnz(best, os.path.join(folder, "accuracy_vs_nnz.png"))
    out += [Figure("accuracy_vs_nnz.png", "accuracy vs nnz"), ""]
    for model, part in best.groupby("model", sort=True):
        wide = part.assign(cell=[f"{v:.4f} ({int(n)})" for v, n in zip(part["value"], part["nnz_weights"])])
        wide = wide.pivot(index="method", columns="target_nnz", values="cell").fillna("—")
        wide.columns = [f"F={int(c)}" for c in wide.columns]
        out += [f"### {model}: best accuracy (measured Weight NNZ) per target", "", Table(wide), ""]
    out += ["## Sparsest model per algorithm", ""]
    for target in TARGETS:
        found = smallest(best, target)
        rows = []
        for (model, method), _ in best.groupby(["model", "method"], sort=True):
            if (model, method) in found.index:
                r = found.loc[(model, method)]
                rows.append(
                    [
                        model,
                        method,
                        int(r["nnz_weights"]),
                        int(r["nnz_model"]),
                        f"{r['value']:.4f}",
                        int(r["target_nnz"]),
                    ]
                )
            else:
                rows.append([model, method, "—", "—", "—", "—"])
        frame = pd.DataFrame(rows, columns=["model", "method", "Weight NNZ", "Model NNZ", "accuracy", "target nnz"])
        out += [
            f"Fewest nonzero weights reaching {target:.1%} accuracy (— : no run reached it):",
            "",
            Table(frame, False),
            "",
        ]
    out += _overparameterisation(best, folder)
    out += _connectivity(trials)
    return out


def model_width(frame: pd.DataFrame) -> pd.Series:
    """A model's width: its uniform `width`, or its widest layer where d1, d2, d3 are given."""
    width = frame["width"] if "width" in frame else pd.Series(pd.NA, index=frame.index)
    if "d1" in frame:
        given = [frame[d].where(frame[d].fillna(0) > 0, width) for d in ("d1", "d2", "d3")]
        width = pd.concat(given, axis=1).max(axis=1)
    return width


def _overparameterisation(best: pd.DataFrame, folder: str) -> list[Block]:
    """The study's overparameterisation view (§5.5): per algorithm, the fewest nonzero weights reaching each
    accuracy target against the model's width; drawn when the sweep has more than one width."""
    best = best.assign(model_width=model_width(best))
    if best["model_width"].nunique() < 2:
        return []
    init = best["init"].fillna("default") if "init" in best else pd.Series("default", index=best.index)
    best = best.assign(init_label=init)
    rows = []
    for target in TARGETS:
        hit = best[best["value"] >= target].sort_values(["nnz_weights", "value"], ascending=[True, False])
        hit = hit.drop_duplicates(["init_label", "model_width", "method"])
        for _, r in hit.iterrows():
            rows.append(
                {
                    "target": f"{target:.1%}",
                    "init": r["init_label"],
                    "method": r["method"],
                    "width": int(r["model_width"]),
                    "nnz_weights": int(r["nnz_weights"]),
                }
            )
    frame = pd.DataFrame(rows, columns=["target", "init", "method", "width", "nnz_weights"])
    widths = sorted(int(w) for w in best["model_width"].dropna().unique())
    out = [
        "## Overparameterisation: fewest nonzero weights reaching the target, by width",
        "",
        f"Widths {', '.join(map(str, widths))}. A missing point: no run of that algorithm at that width reached the "
        "target (papers/sparsest-models.md §5.5: the study finds pruning does worse from wider models).",
        "",
    ]
    if frame.empty:
        return out + ["(no run reached 95 % accuracy at any width)", ""]
    from analysis import plots

    plots.overparameterisation(frame, os.path.join(folder, "overparameterisation.png"))
    wide = frame.pivot_table(index=["target", "init", "method"], columns="width", values="nnz_weights", aggfunc="min")
    wide = wide.reindex(columns=widths).map(lambda v: "—" if pd.isna(v) else str(int(v)))
    wide.columns = [f"width {w}" for w in wide.columns]
    return out + [Figure("overparameterisation.png", "overparameterisation"), "", Table(wide), ""]


def _connectivity(trials: pd.DataFrame) -> list[Block]:
    """Per (model, method), over its completed runs: the disconnected paths pruning left (trainables/training/
    structure.py defines them: ours, as the paper's definition is not in its code)."""
    done = trials[(trials["status"] == "completed") & trials["target_nnz"].notna() & trials["paths"].notna()].copy()
    if done.empty:
        return []
    done["model"] = model_label(done)
    done["ineffective share"] = done["ineffective_weights"] / done["nnz_weights"].where(done["nnz_weights"] > 0)
    grouped = done.groupby(["model", "method"], sort=True)
    frame = pd.DataFrame(
        {
            "runs": grouped.size(),
            "in-degree-0 neurons": grouped["in_degree_zero"].mean().round(2),
            "out-degree-0 neurons": grouped["out_degree_zero"].mean().round(2),
            "ineffective weights": grouped["ineffective_weights"].mean().round(2),
            "ineffective share": grouped["ineffective share"].mean().round(3),
            "runs with ineffective weights": grouped["ineffective_weights"].apply(lambda s: f"{(s > 0).mean():.0%}"),
            "runs cut (no path)": grouped["paths"].apply(lambda s: f"{(s == 0).mean():.0%}"),
        }
    ).reset_index()
    return [
        "## Disconnected paths",
        "",
        "Means over each algorithm's completed runs, on the final masks: hidden neurons with no incoming (in-degree "
        "0) or no outgoing (out-degree 0) nonzero weight, and ineffective weights: nonzero weights on no "
        "input-to-output path (docs/sparsest-models.md gives the definition; it is ours).",
        "",
        Table(frame, False),
        "",
    ]
