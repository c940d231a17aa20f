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

from analysis import document, lth, search_report, sparsest, tables
from analysis.document import Block, Figure, Table
from analysis.errors import ReportError
from analysis.load import read_arrow, to_frame
from sweep import search
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
    progress: str | None = None  # for a sweep not finished: how many of its planned trials have


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
    return Report(target, report.markdown, report.trials, report.damaged, report.progress)


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
    wide = tables.wide_table(best) if not best.empty else None
    table = tables.to_markdown(wide) if wide is not None else "(no completed trials)"
    best.to_csv(os.path.join(folder, "best.csv"), index=False)
    body: list[Block] = [
        _summary(trials),
        "",
        "## Best configuration per method and target sparsity",
        "",
        _legend(best),
        "",
    ]
    if wide is None:
        body += ["(no completed trials)", ""]
    else:
        shown = _hyperparameters(best, trials, found)
        every = _hyperparameters(best, trials, found, every=True)
        body += [Table(wide, details=_cell_details(best, trials, shown, every)), ""]
        body += ["Each cell's configuration and the seeds behind its mean: the Details table below (and, on the "
                 "HTML page, under the cell).", ""]  # fmt: skip
        points = trials.loc[learned & (trials["status"] == "completed"), ["method", "config_hash", "sparsity", "value"]]
        _plots().metric_vs_sparsity(trials, best, os.path.join(folder, "metric_vs_sparsity.png"), points)
        body += [
            Figure("metric_vs_sparsity.png", "metric vs sparsity"),
            "",
            "## Details",
            "",
            _details(best, shown),
            "",
        ]
        body += _heatmap(found, best, heatmap_level, folder)
    if learned.any():
        body += _learned(trials, learned)
    body += ["## Achieved vs target sparsity", "", *_audit(trials[~learned], folder), ""]
    searched = search_report.applies(everything)  # the search's stages are not lottery-ticket children
    body += lth.section(everything[~everything["stage"].isin(search_report.STAGES)] if searched else everything, folder)
    body += sparsest.section(trials, folder)
    body += search_report.section(everything, trials, folder, sweep_dir)
    if reference:
        body += _published(set(trials["task"]), best[best["metric"].isin(_reference_metrics())], everything)
    failed = trials[trials["status"] != "completed"]
    if not failed.empty:
        columns = ["trial_id", "method", "target_sparsity", "status", "steps"]
        body += ["## Trials that did not complete", "", Table(failed[columns], False), ""]
    title = f"Sweep report: {paths.name(sweep_dir)}"
    manifest = _manifest(sweep_dir)
    progress = _progress(everything, manifest, sweep_dir)
    notes = _damaged_note(found) + ([progress, ""] if progress else [])
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write(document.markdown([f"# {title}", "", *notes, *body]))
    summary = _page_summary(sweep_dir, everything, manifest, progress, found)
    page = os.path.join(folder, PAGE)
    with open(page + ".part", "w") as f:  # a reader never opens half a page
        f.write(document.html(body, folder, title, summary))
    os.replace(page + ".part", page)
    damaged = tuple(paths.redact(where) for where, _ in found.damaged)
    return Report(folder, table, len(trials), damaged, progress.replace("**", "") if progress else None)


PAGE = "index.html"


def _manifest(sweep_dir: str) -> dict:
    """sweep.json (plan hash, planned trial ids, creation time, versions); {} where it is missing or unreadable
    (a sweep copied without it still has a report)."""
    import json

    try:
        return json.loads(storage.read_text(paths.manifest_file(sweep_dir)))
    except (OSError, ValueError):
        return {}


def _progress(everything: pd.DataFrame, manifest: dict, sweep_dir: str) -> str | None:
    """For a sweep not finished (still running, or stopped): how many of its planned trials have finished."""
    planned = len(manifest.get("trial_ids", ()))
    finished = everything["trial_id"].nunique()
    pending = search.phase2_pending(sweep_dir)
    if (not planned or finished >= planned) and not pending:
        return None
    later = (
        f"; stage {search.PHASE2}'s trials are planned once stage {search.PHASE1} has chosen its structure"
        if pending
        else ""
    )
    return (
        f"**Not finished: {finished:,} of {planned:,} planned trials have finished{later}.** This report shows the "
        f"rows so far (`sparsity status {paths.redact(sweep_dir)}` tells what is in progress; `sparsity resume` "
        "runs the rest)."
    )


def _page_summary(sweep_dir: str, everything: pd.DataFrame, manifest: dict, progress: str | None, found) -> dict:
    """What the HTML page states above the tables: trials by status (every stage), wall time, versions, plan hash
    and the spec."""
    from importlib import metadata

    one = everything[["trial_id", "status"]].drop_duplicates("trial_id")
    spec_file = paths.spec_file(sweep_dir)
    try:
        spec_text = storage.read_text(spec_file)
    except (OSError, ValueError):  # no copy of the spec (a sweep written by hand, or copied without it)
        spec_text = None
    try:
        tool = metadata.version("sparsity-sweeps")
    except metadata.PackageNotFoundError:
        tool = "(not installed)"
    return {
        "progress": progress.replace("**", "") if progress else None,
        "damaged": " ".join(_damaged_note(found)).replace("**", "").replace("`", "") or None,
        "trials": f"{len(one):,} finished",
        "planned": f"{len(manifest['trial_ids']):,}" if manifest.get("trial_ids") else None,
        "counts": sorted(one["status"].value_counts().items()),
        "task": ", ".join(sorted(everything["task"].dropna().unique())),
        "methods": ", ".join(sorted(everything["method"].dropna().unique())),
        "wall": _wall(sweep_dir, manifest.get("created")),
        "plan_hash": manifest.get("plan_hash"),
        "versions": sorted(manifest.get("versions", {}).items()),
        "spec": spec_text,
        "spec_file": paths.redact(spec_file),
        "tool_version": tool,
    }


def _wall(sweep_dir: str, created: str | None) -> str | None:
    """From the sweep's first start (the manifest's time) to its last written `trials` file."""
    import datetime

    import pyarrow.fs as pafs

    if not created:
        return None
    try:
        start = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%S%z")
        fs, root = storage.resolve(paths.table_dir(sweep_dir, "trials"))
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except (ValueError, OSError):
        return None
    times = [i.mtime for i in infos if i.type == pafs.FileType.File and i.mtime is not None]
    if not times:
        return f"started {start:%Y-%m-%d %H:%M:%S %Z}; no results written yet"
    last = max(times)
    last = last if last.tzinfo else last.replace(tzinfo=datetime.timezone.utc)
    seconds = max(0.0, (last - start).total_seconds())
    hours, rest = divmod(int(round(seconds)), 3600)
    span = f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"
    return (
        f"{span}: started {start:%Y-%m-%d %H:%M:%S %z}, last result written "
        f"{last.astimezone(start.tzinfo):%Y-%m-%d %H:%M:%S %z} (a resumed sweep counts the time between its runs)"
    )


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


def _heatmap(found: _Trials, best, level: float | None, folder: str) -> list[Block]:
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
        Figure("layer_sparsity.png", "per-layer sparsity"),
        "",
        Table(grid.round(4)),
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


def _learned(trials, learned) -> list[Block]:
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
        Table(rows, index=False),
        "",
    ]


def _reference_metrics() -> set[str]:
    from analysis import reference

    return set(reference.METRICS.values())


def _published(tasks: set[str], best, everything) -> list[Block]:
    """The study's results beside the sweep's: its README's table as published, the best per level recomputed
    from its released CSVs beside this sweep's, and, for a sweep with lottery-ticket stages, its released
    lottery-ticket and scratch runs beside the sweep's own table."""
    from analysis import reference

    lines = ["## Published: Gale, Elsen & Hooker 2019 (State of Sparsity)", ""]
    known = sorted(tasks & set(reference.TASKS))
    if not known:
        return lines + [
            f"The study has no results for {', '.join(sorted(tasks))} (it ran {', '.join(reference.TASKS)}).",
            "",
        ]
    for task in known:
        unit = "tokenized BLEU" if task == reference.TRANSFORMER else "top-1 accuracy, %"
        recomputed = reference.published_best(task)
        recomputed = recomputed.assign(method=recomputed["method"] + " (recomputed from CSVs)")
        ours = best[best["task"] == task].assign(method=lambda d: d["method"] + " (this sweep)")
        both = tables.wide_table(pd.concat([recomputed, ours]))
        lines += [
            f"### {task}: the study's best per sparsity, as published ({unit})",
            "",
            "The table of the study's README (its top checkpoints; 'failed' where it says so; the extended "
            "magnitude pruning keeps the first layer dense and trains 1.5x longer, its notes give its targets).",
            "",
            Table(reference.published_readme_wide(task)),
            "",
            f"### {task}: recomputed from the released CSVs, beside this sweep",
            "",
            "Best per level over the study's released runs, by this tool's level rule (docs/reference-data.md: "
            "the rule, and where the CSVs differ from the README: e.g. ResNet-50 random pruning at 70/95/98 %, VD at "
            "95 %, and the L0 runs the README calls failed), beside this sweep's best configurations.",
            "",
            Table(both),
            "",
        ]
        lines += _published_lottery(task, everything)
    return lines


def _published_lottery(task: str, everything) -> list[Block]:
    """The study's released lottery-ticket and scratch runs (max over runs per level, as its figures take them)
    beside this sweep's lottery-ticket table of the same task; [] for a sweep without such stages."""
    from analysis import reference

    mine = everything[everything["task"] == task]
    if not lth.has_stages(mine):
        return []
    ours = lth.study(mine)
    if ours.empty:
        return []
    runs = reference.published_lottery(task)
    files = ", ".join(sorted(runs["file"].unique()))
    return [
        f"### {task}: lottery ticket and scratch retraining, published runs beside this sweep's",
        "",
        f"The study's released runs (max over each level's runs, as its tables take it; files: {files}). "
        "'pruned (published MP)' is the README's magnitude pruning; the scratch_b variants in brackets were "
        "retrained with other learning-rate schedules (the file names them).",
        "",
        Table(reference.published_lottery_wide(task)),
        "",
        "This sweep (best configuration per cell, mean ± std over seeds):",
        "",
        Table(lth.wide(ours)),
        "",
    ]


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


def _details(best, shown: dict[str, dict]) -> Table:
    """The best configurations with the hyper-parameters that vary over the compared rows (`shown`, from
    _hyperparameters)."""
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
    return Table(pd.DataFrame(rows), index=False)


def _cell_details(best, trials, shown: dict[str, dict], every: dict[str, dict]) -> dict[tuple[str, str], str]:
    """Per cell of the method x sparsity table (keyed as tables.wide_table labels it): the winning configuration
    (what varies over the sweep, then its other settings), and each seed's value and achieved sparsity behind the
    mean."""
    keys = ["method", "target_sparsity", "config_hash"]
    mine = trials.loc[(trials["status"] == "completed") & trials["config_hash"].isin(set(best["config_hash"]))]
    runs = {k: g for k, g in mine.groupby(keys, sort=False)[["seed", "value", "sparsity"]]}
    out = {}
    for r in best.itertuples():
        row = tables.level_label(r.target_sparsity)
        hps = (
            ", ".join(f"{c}={v}" for c, v in shown[r.config_hash].items()) or "no hyper-parameter varies in this sweep"
        )
        rest = ", ".join(f"{c}={v}" for c, v in every[r.config_hash].items() if c not in shown[r.config_hash])
        seeds = runs.get((r.method, r.target_sparsity, r.config_hash))
        per_seed = []
        if seeds is not None:
            for s in seeds.sort_values("seed").itertuples():
                value = tables.format_value(r.metric, s.value, 0.0).split(" ±")[0]
                seed = "?" if pd.isna(s.seed) else int(s.seed)
                per_seed.append(f"seed {seed}: {value} (sparsity {s.sparsity:.4f})")
        out[(row, r.method)] = (
            f"config {r.config_hash[:10]}: {hps}\n"
            + (f"with {rest}\n" if rest else "")
            + f"best of {r.configs} configuration{'s' if r.configs != 1 else ''}; "
            f"{r.seeds} seed{'s' if r.seeds != 1 else ''}:\n" + "\n".join(per_seed)
        )
    return out


def _hyperparameters(best, trials, found: _Trials, every: bool = False) -> dict[str, dict]:
    """Per best configuration hash, {column: value} of its first row for the columns outside _FIXED with more than
    one distinct (non-null) value over `trials` (`every`: all of them), nulls left out; values print as pandas
    would hold them."""
    table, positions = found.table, trials.index.to_numpy()
    whole = len(positions) == table.num_rows  # the usual case: nothing was filtered out, no copy needed
    candidates = [c for c in table.column_names if c not in _FIXED]
    if every:
        varying = candidates
    else:
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


def _audit_nnz(trials) -> list[Block]:
    """Trials whose target is a number of kept weights (`nnz`): how many kept exactly that many, and how far the
    others are off (the study's thresholds keep 1-2 fewer for some algorithms: papers/sparsest-models.md §4)."""
    done = trials[(trials["status"] == "completed") & trials["nnz_weights"].notna()]
    if done.empty:
        return []
    off = (done["nnz_weights"] - done["target_nnz"]).astype(int)
    tally = off.value_counts().sort_index()
    parts = ", ".join(f"{n} {'exactly' if d == 0 else f'{d:+d}'}" for d, n in tally.items())
    by_method = done.assign(off=off).groupby("method")["off"].agg(["min", "max"])
    spread = ", ".join(f"{m} {int(r['min']):+d}..{int(r['max']):+d}" for m, r in by_method.iterrows())
    return [
        f"Trials with a target number of kept weights (`nnz`): {len(done)} completed, their Weight NNZ against the "
        f"target: {parts}. Per method (fewest..most): {spread}.",
        "",
    ]


AUDIT_ROWS = 20  # the report lists at most this many trials that miss their target; audit.csv has them all


def _audit(trials, folder: str) -> list[Block]:
    counted = trials["target_nnz"].notna() if "target_nnz" in trials else pd.Series(False, index=trials.index)
    out = _audit_nnz(trials[counted]) if counted.any() else []
    flagged = tables.audit(trials[~counted])
    if flagged.empty:
        if counted.all():
            return out
        return out + [
            f"Every completed trial is within {100 * tables.AUDIT_TOLERANCE:.1f} points of its target "
            "(methods that aim at one)."
        ]
    flagged = flagged.sort_values("miss", ascending=False, kind="stable")
    flagged.to_csv(os.path.join(folder, "audit.csv"), index=False)
    shown = f"; the {AUDIT_ROWS} that miss it most (all of them: audit.csv)" if len(flagged) > AUDIT_ROWS else ""
    return out + [
        f"{len(flagged)} trials miss their target by more than {100 * tables.AUDIT_TOLERANCE:.1f} points{shown}:",
        "",
        Table(flagged.head(AUDIT_ROWS), index=False),
    ]


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
    *sparsest.COLUMNS,  # measured counts and connectivity (and the nnz target, the cell's key): results, not settings
}
