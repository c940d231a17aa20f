"""The report on a packed sweep of many trials (bench/report_scale.py's generator, scaled down): its method x
sparsity table and heatmap against an independent pandas computation, status counts, and that importing the
report stays light. Correctness only; bench/report_scale.py measures the time."""

from __future__ import annotations

import importlib.util
import math
import os
import pathlib
import subprocess
import sys

import pandas as pd
import pyarrow.dataset as ds
import pytest

from analysis.load import read_table, status_counts
from analysis.report import write_report

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRIALS, FILES = 20_000, 40


def _generator():
    spec = importlib.util.spec_from_file_location("report_scale", ROOT / "bench" / "report_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("scale") / "packed")
    summary = _generator().generate(folder, TRIALS, FILES, seed=3)
    return folder, summary


def _table(sweep_dir: str, table: str) -> pd.DataFrame:
    """Read with pyarrow.dataset directly, not with the code under test."""
    return ds.dataset(os.path.join(sweep_dir, "results", table), format="parquet").to_table().to_pandas()


def _expected_cells(trials: pd.DataFrame) -> dict[tuple[str, str], tuple[str, str]]:
    """(target label, method) -> (the cell as the report writes it, config hash): best mean over seeds."""
    done = trials[trials["status"] == "completed"]
    configs = done.groupby(["method", "target_sparsity", "config_hash"]).agg(
        mean=("value", "mean"), std=("value", "std"), sparsity=("sparsity", "mean")
    )
    cells = {}
    for (method, target), group in configs.groupby(level=["method", "target_sparsity"]):
        group = group.reset_index().sort_values(["mean", "config_hash"], ascending=[False, True])
        best = group.iloc[0]
        std = 0.0 if math.isnan(best["std"]) else best["std"]
        cell = f"{100 * best['mean']:.2f} ± {100 * std:.2f}"
        cell += "" if method == "dense" else f" ({best['sparsity']:.3f})"
        label = "0 (dense)" if target == 0 else f"{target:g}"
        cells[(label, method)] = (cell, best["config_hash"])
    return cells


def _markdown_cells(markdown: str) -> dict[tuple[str, str], str]:
    lines = [line.strip("|").split(" | ") for line in markdown.strip().splitlines()]
    header, rows = [c.strip() for c in lines[0]], lines[2:]
    return {(row[0].strip(), m): c.strip() for row in rows for m, c in zip(header[1:], row[1:]) if c.strip()}


def test_method_by_sparsity_table_matches_pandas(sweep):
    folder, summary = sweep
    assert len(os.listdir(os.path.join(folder, "results", "trials"))) == FILES
    trials = _table(folder, "trials")
    assert len(trials) == TRIALS and summary["rows"]["trials"] == TRIALS
    report = write_report(folder)
    expected = _expected_cells(trials)
    assert _markdown_cells(report.markdown) == {k: cell for k, (cell, _) in expected.items()}
    best = pd.read_csv(os.path.join(report.folder, "best.csv"))
    label = best["target_sparsity"].map(lambda t: "0 (dense)" if t == 0 else f"{t:g}")
    chosen = dict(zip(zip(label, best["method"]), best["config_hash"]))
    assert chosen == {k: h for k, (_, h) in expected.items()}
    text = open(os.path.join(report.folder, "README.md")).read()
    counts = trials["status"].value_counts()
    assert f"{TRIALS} trials ({counts['completed']} completed, {counts['diverged']} diverged" in text
    assert "## Trials that did not complete" in text and "trials miss their target" in text


def test_heatmap_is_the_mean_over_seeds_of_the_best_configurations(sweep):
    folder, _ = sweep
    report = write_report(folder, heatmap_level=0.9)
    best = pd.read_csv(os.path.join(report.folder, "best.csv"))
    chosen = best[(best["target_sparsity"] == 0.9) & (best["method"] != "dense")]
    layers = _table(folder, "layers").merge(chosen[["method", "config_hash"]])
    grid = layers.groupby(["layer", "method"])["sparsity"].mean().unstack().round(4)
    text = open(os.path.join(report.folder, "README.md")).read()
    for layer, row in grid.iterrows():
        assert f"| {layer} | " + " | ".join(f"{v:.4g}" for v in row) + " |" in text, layer


def test_status_counts_read_two_columns(sweep):
    folder, summary = sweep
    trials, evals = _table(folder, "trials"), _table(folder, "evals")
    status = status_counts(folder)
    counts, finished, evaluated = status  # a plain tuple for callers that unpack it
    assert counts == trials.drop_duplicates("trial_id")["status"].value_counts().to_dict()
    assert finished == set(trials["trial_id"]) and evaluated == set(evals["trial_id"])
    assert status.running == set(summary["trial_ids"]) - finished and len(status.running) == TRIALS // 1000
    assert status_counts(os.path.join(folder, "nothing-here")) == ({}, set(), set())


def test_selective_reads(sweep):
    folder, _ = sweep
    some = sorted(set(_table(folder, "trials")["config_hash"]))[:3]
    rows = read_table(folder, "layers", ["config_hash", "layer"], where={"config_hash": some})
    assert list(rows.columns) == ["config_hash", "layer"] and set(rows["config_hash"]) == set(some)
    one = read_table(folder, "trials", ["trial_id", "no_such_column"], units=["pack-000000", "missing"])
    assert list(one.columns) == ["trial_id"] and len(one) == TRIALS // FILES


def test_importing_the_report_loads_no_plotting_library():
    """The CLI imports analysis.report for every command; matplotlib and seaborn load when a report is drawn."""
    code = "import sys, analysis.report; print(sorted(m for m in ('matplotlib', 'seaborn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
