"""`sparsity report SWEEP_DIR`: the comparison a researcher reads, written to SWEEP_DIR/report/.

The report is drawn into a local folder (matplotlib and pandas write files); for a sweep on a filesystem URI
(s3://...) that folder is a temporary one, uploaded to the sweep's report/ when complete.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis import lth, search_report, sparsest, tables
from analysis.errors import ReportError
from analysis.load import read_arrow, to_frame
from trainables.records import paths, storage

# The columns of `trials` the report computes with. The others (the hyper-parameters) only name the best
# configurations (_details), so they stay in Arrow rather than be copied through every pandas filter.
CORE = [
    "trial_id",
    "parent_trial_id",
    "stage",
    "task",
    "method",
    "seed",
    "config_hash",
    "target_sparsity",
    "status",
    "metric",
    "primary",
    "mode",
    "value",
    "sparsity",
    "steps",
    "variant",  # the lottery-ticket section labels children by these two
    "rewind_step",
    *sparsest.COLUMNS,  # the Sparsest-Models section: nnz targets, counts, connectivity, and the model's options
    *sparsest.MODEL,
    *search_report.COLUMNS,  # the combinatorial search's structures and masks
]
UNREAD = ("sweep", "source", "metric_detail", "wall_time_s")  # used by no part of the report


@dataclass
class Report:
    folder: str
    markdown: str  # the method x sparsity table, for printing
    trials: int
    damaged: tuple[str, ...] = ()  # result files that could not be read, left out (the report says so first)


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
    return Report(target, report.markdown, report.trials, report.damaged)


def _render(
    sweep_dir: str, folder: str, heatmap_level: float | None, reference: str | None, metric: str | None
) -> Report:
    """The report of `sweep_dir` (a folder or URI), written into the local `folder`."""
    if reference is not None and reference not in REFERENCES:
        raise ReportError(f"unknown reference {reference!r}; available: {', '.join(REFERENCES)}")
    if not storage.is_dir(sweep_dir):
        raise ReportError(f"{paths.redact(sweep_dir)}: no such sweep folder")
    found = _read_trials(sweep_dir)
    trials = to_frame(found.table.select([c for c in CORE if c in found.table.column_names]))
    if trials.empty and found.damaged:
        (where, why), more = found.damaged[0], len(found.damaged) - 1
        raise ReportError(
            f"{paths.redact(where)}: damaged results file ({why})"
            + (f" and {more} more" if more else "")
            + f", and no readable trials rows; `sparsity resume {paths.redact(sweep_dir)}` moves them aside and "
            "runs their trials again"
        )
    if trials.empty:
        where = paths.redact(paths.table_dir(sweep_dir, "trials"))
        raise ReportError(f"{paths.redact(sweep_dir)}: no finished trials yet (nothing in {where})")
    try:
        trials = tables.select_metric(trials, metric)
    except ValueError as e:
        raise ReportError(f"{paths.redact(sweep_dir)}: {e}") from None
    everything = tables.assign_levels(trials)  # all stages: the lottery-ticket section reads children too
    if "stage" in trials:  # the method x sparsity comparison is of the first stage's methods
        main = trials["stage"].fillna("main") == "main"
        trials = trials if main.all() else trials[main]  # no copy of a sweep without later stages
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
        points = trials.loc[learned & (trials["status"] == "completed"), ["method", "config_hash", "sparsity", "value"]]
        _plots().metric_vs_sparsity(trials, best, os.path.join(folder, "metric_vs_sparsity.png"), points)
        details = _details(best, trials, found)
        sections += ["![metric vs sparsity](metric_vs_sparsity.png)", "", "## Details", "", details, ""]
        sections += _heatmap(found, best, heatmap_level, folder)
    if learned.any():
        sections += _learned(trials, learned)
    sections += ["## Achieved vs target sparsity", "", _audit(trials[~learned]), ""]
    searched = search_report.applies(everything)  # the search's stages are not lottery-ticket children
    sections += lth.section(
        everything[~everything["stage"].isin(search_report.STAGES)] if searched else everything, folder
    )
    sections += sparsest.section(trials, folder)
    sections += search_report.section(everything, trials, folder, sweep_dir)
    if reference:
        sections += _published(set(trials["task"]), best[best["metric"].isin(_reference_metrics())])
    failed = trials[trials["status"] != "completed"]
    if not failed.empty:
        columns = ["trial_id", "method", "target_sparsity", "status", "steps"]
        sections += ["## Trials that did not complete", "", tables.to_markdown(failed[columns], False), ""]
    sections[2:2] = _damaged_note(found)  # first, under the title
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write("\n".join(sections))
    return Report(folder, table, len(trials), tuple(paths.redact(where) for where, _ in found.damaged))


def _damaged_note(found: _Trials) -> list[str]:
    """The report's first words when result files could not be read: which, and that their rows are missing."""
    damaged = found.damaged
    if not damaged:
        return []
    files = "; ".join(f"`{paths.redact(where)}` ({why})" for where, why in damaged)
    return [
        f"**Left out: {len(damaged)} damaged result file{'' if len(damaged) == 1 else 's'}**, whose rows are missing from this report: {files}. "
        f"`sparsity resume {paths.redact(found.sweep_dir)}` moves them aside and runs their trials again.",
        "",
    ]


def _plots():
    """matplotlib and seaborn load only when a report is drawn: the CLI imports this module for every command."""
    from analysis import plots

    return plots


@dataclass
class _Trials:
    """The trials table as read (every column but UNREAD) and each row's unit."""

    sweep_dir: str
    table: pa.Table
    units: pa.ChunkedArray | None
    damaged: list[tuple[str, str]]  # (file, why) of every results file read so far that could not be


def _read_trials(sweep_dir: str) -> _Trials:
    damaged: list[tuple[str, str]] = []
    table = read_arrow(sweep_dir, "trials", exclude=UNREAD, unit_column=_UNIT, damaged=damaged)
    units = table[_UNIT] if _UNIT in table.column_names else None
    return _Trials(sweep_dir, table.drop_columns([_UNIT]) if units is not None else table, units, damaged)


def _heatmap(found: _Trials, best, level: float | None, folder: str) -> list[str]:
    sparse = best[best["method"] != "dense"]
    if sparse.empty:
        return []
    if level is None:
        per_method = sparse.groupby("method")["target_sparsity"].apply(set)
        common = set.intersection(*per_method) if len(per_method) else set()
        level = max(common) if common else sparse["target_sparsity"].max()
    chosen = best.loc[(best["target_sparsity"] == level) & (best["method"] != "dense"), "config_hash"]
    layers = _layers(found, set(chosen))
    grid = _plots().layer_heatmap(layers, best, level, os.path.join(folder, "layer_sparsity.png"))
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


def _layers(found: _Trials, chosen: set[str]) -> pd.DataFrame:
    """The `layers` rows of the configurations `chosen` (config hashes): a few hundred rows among millions.

    A trial's rows of every table sit in its unit's files (trainables/packing; a resumed sweep drops stale copies
    elsewhere: sweep/packing.drop_stale_rows), so only the units holding those configurations' `trials` rows
    are read; if that misses a completed trial's layers, the whole table is scanned. Each trial writes its
    tensors in model order, so their first-seen order is the model's either way."""
    keys = found.table.select(["trial_id", "config_hash", "status"])
    mine = pc.is_in(keys["config_hash"], value_set=pa.array(sorted(chosen), pa.string()))
    if found.units is not None:
        ids = pc.unique(found.units.filter(mine).cast(pa.string())).to_pylist()
        seen: list[tuple[str, str]] = []
        layers = _layer_rows(found, chosen, seen, units=ids)
        ours = keys.filter(mine)
        done = ours.filter(pc.equal(ours["status"], "completed"))["trial_id"].to_pylist()
        if set(done) <= set(layers.get("trial_id", ())) or seen:  # a damaged file: the whole table cannot help
            found.damaged.extend(seen)
            return layers
    seen = []
    layers = _layer_rows(found, chosen, seen)
    found.damaged.extend(seen)
    return layers


def _layer_rows(found: _Trials, chosen: set[str], damaged: list, units=None) -> pd.DataFrame:
    arrow = read_arrow(found.sweep_dir, "layers", LAYER_COLUMNS, {"config_hash": chosen}, units=units, damaged=damaged)
    return to_frame(arrow)


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
    one = trials[["trial_id", "status"]].drop_duplicates("trial_id")  # two columns: nothing else is copied
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


def _details(best, trials, found: _Trials) -> str:
    """The best configurations with the hyper-parameters that vary over the compared rows (`trials`, whose index
    is each row's position in `found.table`)."""
    shown = _hyperparameters(best, trials, found)
    rows = []
    for r in best.itertuples():
        hps = ", ".join(f"{c}={v}" for c, v in shown[r.config_hash].items())
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


def _hyperparameters(best, trials, found: _Trials) -> dict[str, dict]:
    """Per best configuration hash, {column: value} of its first row for the columns outside _FIXED with more than
    one distinct (non-null) value over `trials`, nulls left out; values print as pandas would hold them."""
    table, positions = found.table, trials.index.to_numpy()
    whole = len(positions) == table.num_rows  # the usual case: nothing was filtered out, no copy needed
    candidates = [c for c in table.column_names if c not in _FIXED]
    varying = [c for c in candidates if _distinct(table[c] if whole else table[c].take(positions)) > 1]
    hashes = set(best["config_hash"])
    first = trials.loc[trials["config_hash"].isin(hashes), "config_hash"].drop_duplicates()
    rows = table.select(varying).take(first.index.to_numpy())
    shown = {h: {} for h in hashes}
    for name in varying:
        column = rows[name]
        if pa.types.is_integer(column.type) and table[name].null_count:  # pandas reads such a column as float
            column = column.cast(pa.float64())
        for h, v in zip(first, column.to_pylist()):
            if v is not None and v == v:  # v != v: NaN, which pandas counts as missing
                shown[h][name] = v
    return shown


def _distinct(column) -> int:
    """Distinct values, nulls and NaN not counted (pandas' nunique)."""
    if pa.types.is_floating(column.type):
        column = column.filter(pc.invert(pc.is_nan(column)))  # NaN: a missing value to pandas
    return pc.count_distinct(column, mode="only_valid").as_py()


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


LAYER_COLUMNS = ["trial_id", "method", "config_hash", "layer", "sparsity"]
_UNIT = "<unit>"  # the column read_arrow adds: each row's unit id (no results column can have this name)
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
