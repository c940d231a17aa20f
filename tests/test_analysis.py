"""Analysis on hand-made results: best over hyper-parameters, mean ± std over seeds, audit, report files."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis import best_per_cell, read_table
from analysis.report import ReportError, write_report
from analysis.tables import audit, wide_table
from trainables.records.results import write_rows
from trainables.trial import Trial


def row(method, target, config, seed, value, sparsity=None, status="completed", mode="max"):
    return {
        "task": "t",
        "method": method,
        "target_sparsity": target,
        "config_hash": config,
        "seed": seed,
        "metric": "accuracy",
        "mode": mode,
        "value": value,
        "status": status,
        "sparsity": target if sparsity is None else sparsity,
        "trial_id": f"{config}-s{seed}",
    }


def test_best_config_is_chosen_by_mean_over_seeds():
    trials = pd.DataFrame(
        [
            row("magnitude", 0.9, "a", 0, 0.90),
            row("magnitude", 0.9, "a", 1, 0.80),  # mean 0.85
            row("magnitude", 0.9, "b", 0, 0.95),
            row("magnitude", 0.9, "b", 1, 0.70),  # mean 0.825, best single seed
            row("magnitude", 0.9, "c", 0, 0.99, status="diverged"),  # not completed: ignored
            row("random", 0.9, "r", 0, 0.60),
            row("random", 0.9, "r", 1, 0.50),
        ]
    )
    best = best_per_cell(trials).set_index("method")
    assert best.loc["magnitude", "config_hash"] == "a"
    assert best.loc["magnitude", "value_mean"] == pytest.approx(0.85)
    assert best.loc["magnitude", "value_std"] == pytest.approx(math.sqrt(0.005))  # sample std of (0.9, 0.8)
    assert best.loc["magnitude", "configs"] == 2 and best.loc["magnitude", "seeds"] == 2
    wide = wide_table(best_per_cell(trials))
    assert wide.loc["0.9", "magnitude"] == "85.00 ± 7.07 (0.900)"
    assert wide.loc["0.9", "random"] == "55.00 ± 7.07 (0.900)"


def test_lower_is_better_metrics():
    trials = pd.DataFrame([row("m", 0.5, "a", 0, 2.0, mode="min"), row("m", 0.5, "b", 0, 1.0, mode="min")])
    assert best_per_cell(trials).loc[0, "config_hash"] == "b"


def test_audit_flags_misses_over_half_a_point():
    trials = pd.DataFrame([row("m", 0.9, "a", 0, 1.0, sparsity=0.8949), row("m", 0.9, "b", 0, 1.0, sparsity=0.8951)])
    assert list(audit(trials)["trial_id"]) == ["a-s0"]


def _trial(sweep_dir, method, target, seed, config):
    return Trial(
        sweep="s",
        sweep_dir=str(sweep_dir),
        trial_id=f"{method}-{target}-{config}-s{seed}",
        config_hash=config,
        task="cubist_spiral",
        task_options={"lr": 0.1},
        method=method,
        method_config={},
        target_sparsity=target,
        seed=seed,
        hp_columns=(("lr", "float"),),
    )


def test_report_from_real_parquet(tmp_path):
    for method, target, seed, value, achieved in [
        ("dense", 0.0, 0, 1.0, 0.0),
        ("magnitude", 0.9, 0, 0.99, 0.9),
        ("magnitude", 0.9, 1, 0.97, 0.9),
        ("random", 0.9, 0, 0.5, 0.85),
    ]:
        trial = _trial(tmp_path, method, target, seed, f"{method}{target}")
        write_rows(
            trial,
            "trials",
            [
                {
                    "source": "sweep",
                    "status": "completed",
                    "metric": "accuracy",
                    "mode": "max",
                    "value": value,
                    "sparsity": achieved,
                    "steps": 10,
                    "wall_time_s": 1.0,
                }
            ],
        )
        first = 0.5 if method == "random" else achieved  # random kept its first layer denser
        write_rows(
            trial,
            "layers",
            [
                {"layer": "0.weight", "shape": "4x2", "numel": 8, "nonzero": 8 - round(8 * first), "sparsity": first},
                {"layer": "2.weight", "shape": "1x4", "numel": 4, "nonzero": 0, "sparsity": achieved},
            ],
        )
    assert len(read_table(str(tmp_path), "trials")) == 4
    report = write_report(str(tmp_path))
    text = (tmp_path / "report" / "README.md").read_text()
    assert "| 0.9 |  | 98.00 ± 1.41 (0.900) | 50.00 ± 0.00 (0.850) |" in report.markdown
    assert "| 0 (dense) | 100.00 ± 0.00 |  |  |" in report.markdown
    assert report.markdown in text and "1 trials miss their target" in text
    assert (tmp_path / "report" / "metric_vs_sparsity.png").stat().st_size > 10_000
    assert "## Per-layer sparsity at 0.9" in text and "| 0.weight | 0.9 | 0.5 |" in text
    assert (tmp_path / "report" / "layer_sparsity.png").stat().st_size > 5_000


def test_report_errors_are_clear(tmp_path):
    with pytest.raises(ReportError, match="no such sweep folder"):
        write_report(str(tmp_path / "nope"))
    with pytest.raises(ReportError, match="no finished trials yet"):
        write_report(str(tmp_path))


def test_report_sets_the_published_frontier_beside_the_sweep(tmp_path):
    for method, target, value in [("magnitude", 0.9, 0.70), ("dense", 0.0, 0.76)]:
        trial = Trial(
            sweep="s",
            sweep_dir=str(tmp_path),
            trial_id=f"{method}-s0",
            config_hash=method,
            task="resnet50_imagenet",
            task_options={},
            method=method,
            method_config={},
            target_sparsity=target,
            seed=0,
        )
        write_rows(
            trial,
            "trials",
            [
                {
                    "source": "sweep",
                    "status": "completed",
                    "metric": "top1",
                    "mode": "max",
                    "value": value,
                    "sparsity": target,
                    "steps": 10,
                    "wall_time_s": 1.0,
                }
            ],
        )
    write_report(str(tmp_path), reference="gale2019")
    text = (tmp_path / "report" / "README.md").read_text()
    assert "## Published: Gale, Elsen & Hooker 2019" in text
    row = next(
        line
        for line in text.splitlines()
        if line.startswith("| 0.9 |") and "(published)" not in line and line.count("|") > 6
    )
    assert "73.91 ± 0.00" in row and "70.00 ± 0.00 (0.900)" in row  # recomputed MP at 90% beside ours
    assert "| magnitude (recomputed from CSVs) | magnitude (this sweep) |" in text
    # the README's table as published: the extended column, 'failed' for L0, the README's own values
    assert "| 95% | 70.59 | 72.71 (target 0.96) | 71.91 | 58.04 | failed |  |" in text
    assert "| 50% | 76.53 | – | 76.55 | 74.59 | failed (≈0.1%) |  |" in text
    assert "58.08 ± 0.00 (0.950)" in text  # and the CSVs' own value for the same cell, labelled as recomputed
    with pytest.raises(ReportError, match="unknown reference 'x'; available: gale2019"):
        write_report(str(tmp_path), reference="x")


def test_pareto_keeps_configs_no_other_beats_on_both_axes():
    from analysis.tables import pareto

    configs = pd.DataFrame(
        {
            "method": ["vd"] * 4,
            "mode": ["max"] * 4,
            "config_hash": list("abcd"),
            "sparsity_mean": [0.99, 0.95, 0.90, 0.80],
            "value_mean": [0.6, 0.9, 0.85, 0.95],
        }
    )
    assert list(pareto(configs)["config_hash"]) == ["d", "b", "a"]  # c: b is sparser and better


def test_the_audit_lists_the_worst_misses_and_writes_them_all_and_counts_nnz_targets_in_weights(tmp_path):
    from analysis import document
    from analysis.report import AUDIT_ROWS, _audit

    misses = [row("m", 0.9, f"c{i}", 0, 1.0, sparsity=0.9 - 0.01 * (i + 1)) for i in range(AUDIT_ROWS + 5)]
    blocks = _audit(pd.DataFrame(misses), str(tmp_path))
    text = document.markdown(blocks)
    assert f"{AUDIT_ROWS + 5} trials miss their target by more than 0.5 points; the {AUDIT_ROWS} that miss" in text
    assert len(blocks[-1].frame) == AUDIT_ROWS and blocks[-1].frame["miss"].iloc[0] == pytest.approx(0.25)
    assert len(pd.read_csv(tmp_path / "audit.csv")) == AUDIT_ROWS + 5
    counted = pd.DataFrame(
        [
            {**row("gmp", 0.5, "g", s, 1.0, sparsity=0.6), "target_nnz": 15, "nnz_weights": 13 + (s == 2)}
            for s in range(3)
        ]
    )
    text = document.markdown(_audit(counted, str(tmp_path)))
    assert (
        "3 completed, their Weight NNZ against the target: 2 -2, 1 -1. Per method (fewest..most): gmp -2..-1." in text
    )
    assert "miss their target" not in text and "Every completed trial" not in text  # counted in weights only


def test_a_lottery_sweep_of_a_study_task_gets_the_studys_lottery_runs_beside_its_own(tmp_path):
    task = "transformer_wmt14_ende"
    rows = [("magnitude", "main", None, None, 20.0), ("magnitude", "lottery", "main-0", "lottery", 18.0)]
    for i, (method, stage, parent, variant, value) in enumerate(rows):
        trial = Trial(
            sweep="s",
            sweep_dir=str(tmp_path),
            trial_id=f"{stage}-{i}",
            config_hash=f"c{i}",
            task=task,
            task_options={},
            method=method,
            method_config={"variant": variant} if variant else {},
            target_sparsity=0.9,
            seed=0,
            stage=stage,
            parent_trial_id=parent,
            hp_columns=(("variant", "str"),),
        )
        row = {"source": "sweep", "status": "completed", "metric": "bleu_tokenized", "mode": "max", "value": value}
        write_rows(trial, "trials", [{**row, "sparsity": 0.9, "steps": 10, "wall_time_s": 1.0}])
    write_report(str(tmp_path), reference="gale2019")
    text = (tmp_path / "report" / "README.md").read_text()
    section = text[text.index("lottery ticket and scratch retraining, published runs beside this sweep's") :]
    published = next(line for line in section.splitlines() if line.startswith("| 90% |"))
    assert published.startswith("| 90% | 23.26 | 21.09 | 21.34 | 20.49 | 20.98 | 22.04 |"), published  # §4.2
    assert "| lottery: magnitude at 0.9 | 20 ± 0 | 18 ± 0 |" in section  # the sweep's own beside it
