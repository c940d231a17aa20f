"""`sparsity report SWEEP_DIR`: the comparison a researcher reads, written to SWEEP_DIR/report/.

The report is drawn into a local folder (matplotlib and pandas write files); for a sweep on a filesystem URI
(s3://...) that folder is a temporary one, uploaded to the sweep's report/ when complete.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import pandas as pd

from analysis import lth, plots, tables
from analysis.load import read_table
from trainables.records import paths, storage


@dataclass
class Report:
    folder: str
    markdown: str  # the method x sparsity table, for printing
    trials: int


class ReportError(ValueError):
    pass


REFERENCES = ("gale2019",)


def write_report(
    sweep_dir: str,
    heatmap_level: float | None = None,
    reference: str | None = None,
    metric: str | None = None,
    out: str | None = None,
) -> Report:
    """Write README.md, best.csv, metric_vs_sparsity.png and layer_sparsity.png under SWEEP_DIR/report/ (or `out`:
    a folder or a URI), drawn locally first when the target is a URI.

    The per-layer heatmap is drawn at `heatmap_level` (default: the highest level every sparse method reached).
    `reference="gale2019"` sets the State of Sparsity's published best-per-level results beside the sweep's own
    when the sweep's task is one the study ran. `metric` picks one of several evaluated metrics (default: the
    task's primary one, e.g. the Transformer's tokenized BLEU rather than its sacreBLEU).
    """
    target = out or paths.report_dir(sweep_dir)
    if not paths.is_uri(target):
        return _render(sweep_dir, target, heatmap_level, reference, metric)
    with tempfile.TemporaryDirectory(prefix="sparsity-report-") as local:
        report = _render(sweep_dir, local, heatmap_level, reference, metric)
        storage.upload_dir(local, target)
    return Report(target, report.markdown, report.trials)


def _render(
    sweep_dir: str, folder: str, heatmap_level: float | None, reference: str | None, metric: str | None
) -> Report:
    """The report of `sweep_dir` (a folder or URI), written into the local `folder`."""
    if reference is not None and reference not in REFERENCES:
        raise ReportError(f"unknown reference {reference!r}; available: {', '.join(REFERENCES)}")
    if not storage.is_dir(sweep_dir):
        raise ReportError(f"{paths.redact(sweep_dir)}: no such sweep folder")
    trials = read_table(sweep_dir, "trials")
    if trials.empty:
        where = paths.redact(paths.table_dir(sweep_dir, "trials"))
        raise ReportError(f"{paths.redact(sweep_dir)}: no finished trials yet (nothing in {where})")
    try:
        trials = tables.select_metric(trials, metric)
    except ValueError as e:
        raise ReportError(f"{paths.redact(sweep_dir)}: {e}") from None
    everything = tables.assign_levels(trials)  # all stages: the lottery-ticket section reads children too
    if "stage" in trials:  # the method x sparsity comparison is of the first stage's methods
        trials = trials[trials["stage"].fillna("main") == "main"]
    learned = trials["target_sparsity"].isna()
    trials = tables.assign_levels(trials)
    os.makedirs(folder, exist_ok=True)
    best = tables.best_per_cell(trials)
    table = tables.to_markdown(tables.wide_table(best)) if not best.empty else "(no completed trials)"
    best.to_csv(os.path.join(folder, "best.csv"), index=False)
    sections = [
        f"# Sweep report: {paths.name(sweep_dir)}",
        "",
        _summary(trials),
        "",
        "## Best configuration per method and target sparsity",
        "",
        _legend(best),
        "",
        table,
        "",
    ]
    if not best.empty:
        points = trials[learned & (trials["status"] == "completed")]
        plots.metric_vs_sparsity(trials, best, os.path.join(folder, "metric_vs_sparsity.png"), points)
        sections += ["![metric vs sparsity](metric_vs_sparsity.png)", "", "## Details", "", _details(best, trials), ""]
        sections += _heatmap(sweep_dir, best, heatmap_level, folder)
    if learned.any():
        sections += _learned(trials, learned)
    sections += ["## Achieved vs target sparsity", "", _audit(trials[~learned]), ""]
    sections += lth.section(everything, folder)
    if reference:
        sections += _published(set(trials["task"]), best[best["metric"].isin(_reference_metrics())])
    failed = trials[trials["status"] != "completed"]
    if not failed.empty:
        columns = ["trial_id", "method", "target_sparsity", "status", "steps"]
        sections += ["## Trials that did not complete", "", tables.to_markdown(failed[columns], False), ""]
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write("\n".join(sections))
    return Report(folder, table, len(trials))


def _heatmap(sweep_dir: str, best, level: float | None, folder: str) -> list[str]:
    sparse = best[best["method"] != "dense"]
    if sparse.empty:
        return []
    if level is None:
        per_method = sparse.groupby("method")["target_sparsity"].apply(set)
        common = set.intersection(*per_method) if len(per_method) else set()
        level = max(common) if common else sparse["target_sparsity"].max()
    grid = plots.layer_heatmap(read_table(sweep_dir, "layers"), best, level, os.path.join(folder, "layer_sparsity.png"))
    if grid is None:
        return [f"## Per-layer sparsity at {level:g}", "", "(no method has a result at this level)", ""]
    return [
        f"## Per-layer sparsity at {level:g}",
        "",
        "Best configuration of each method, mean over seeds.",
        "",
        "![per-layer sparsity](layer_sparsity.png)",
        "",
        tables.to_markdown(grid.round(4)),
        "",
    ]


def _learned(trials, learned) -> list[str]:
    placed = trials.loc[learned, "target_sparsity"].notna()
    configs = tables.per_config(trials[learned].assign(target_sparsity=0.0))
    front = tables.pareto(configs)
    values = [tables.format_value(r.metric, r.value_mean, r.value_std) for r in front.itertuples()]
    rows = pd.DataFrame(
        {
            "method": front["method"],
            "achieved sparsity": front["sparsity_mean"].round(4),
            "value": values,
            "seeds": front["seeds"],
            "config_hash": front["config_hash"].str[:10],
        }
    )
    return [
        "## Methods that learn their sparsity",
        "",
        f"{int(placed.sum())} of {int(learned.sum())} rows of methods without a target (one per evaluation "
        f"threshold) lie within ±{tables.LEVEL_TOLERANCE} of a nominal level and enter the table above (the "
        "State of Sparsity's rule). Every configuration is a point in the plot; these are the ones no other "
        "configuration of the same method beats on both sparsity and metric (mean over seeds):",
        "",
        tables.to_markdown(rows, index=False),
        "",
    ]


def _reference_metrics() -> set[str]:
    from analysis import reference

    return set(reference.METRICS.values())


def _published(tasks: set[str], best) -> list[str]:
    from analysis import reference

    lines = ["## Published: Gale, Elsen & Hooker 2019 (State of Sparsity)", ""]
    known = sorted(tasks & set(reference.TASKS))
    if not known:
        return lines + [
            f"The study has no results for {', '.join(sorted(tasks))} (it ran {', '.join(reference.TASKS)}).",
            "",
        ]
    for task in known:
        published = reference.published_best(task)
        ours = best[best["task"] == task].assign(method=lambda d: d["method"] + " (this sweep)")
        both = tables.wide_table(pd.concat([published.assign(method=published["method"] + " (published)"), ours]))
        lines += [
            f"{task}: best per level, this sweep beside the study's released runs "
            "(docs/reference-data.md: the level rule, and the cells the CSVs cannot give).",
            "",
            tables.to_markdown(both),
            "",
        ]
    return lines


def _summary(trials) -> str:
    one = trials.drop_duplicates("trial_id")
    counts = one["status"].value_counts().to_dict()
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    rows = f", {len(trials)} result rows (one per evaluation variant)" if len(trials) > len(one) else ""
    return (
        f"{len(one)} trials ({parts}{rows}) of task {', '.join(sorted(trials['task'].unique()))}; "
        f"methods: {', '.join(sorted(trials['method'].unique()))}."
    )


def _legend(best) -> str:
    metric = best["metric"].iloc[0] if not best.empty else "metric"
    unit = " (%)" if metric in tables.PERCENT_METRICS else ""
    return (
        f"Cells: {metric}{unit} of the best hyper-parameter configuration, mean ± std over seeds, "
        "and in brackets the achieved sparsity (mean over seeds)."
    )


def _details(best, trials) -> str:
    varying = [c for c in trials.columns if c not in _FIXED and trials[c].nunique(dropna=True) > 1]
    rows = []
    for r in best.itertuples():
        example = trials[trials["config_hash"] == r.config_hash].iloc[0]
        hps = ", ".join(f"{c}={example[c]}" for c in varying if example.notna()[c])
        rows.append(
            {
                "method": r.method,
                "target": r.target_sparsity,
                "achieved": round(r.sparsity_mean, 4),
                "value": tables.format_value(r.metric, r.value_mean, r.value_std),
                "seeds": r.seeds,
                "configs tried": r.configs,
                "best config": hps or "(only one)",
            }
        )
    return tables.to_markdown(pd.DataFrame(rows), index=False)


def _audit(trials) -> str:
    flagged = tables.audit(trials)
    if flagged.empty:
        return (
            f"Every completed trial is within {100 * tables.AUDIT_TOLERANCE:.1f} points of its target "
            "(methods that aim at one)."
        )
    return (
        f"{len(flagged)} trials miss their target by more than {100 * tables.AUDIT_TOLERANCE:.1f} points:\n\n"
        + tables.to_markdown(flagged, index=False)
    )


_FIXED = {
    "primary",
    "metric_detail",
    "sweep",
    "trial_id",
    "parent_trial_id",
    "stage",
    "task",
    "method",
    "seed",
    "config_hash",
    "target_sparsity",
    "source",
    "status",
    "metric",
    "mode",
    "value",
    "sparsity",
    "steps",
    "wall_time_s",
}
