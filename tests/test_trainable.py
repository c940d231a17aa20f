"""The trial loop without Ray: resume equality, divergence, and the results files it writes."""

from __future__ import annotations

import pyarrow.dataset as ds
import pytest
import torch

from trainables.records import paths
from trainables.training.loop import run_trial
from trainables.training.session import LocalSession, load_state
from trainables.trial import Trial

HP = (
    ("width", "int"),
    ("epochs", "int"),
    ("lr", "float"),
    ("eval_every", "int"),
    ("begin_step", "int"),
    ("end_step", "int"),
    ("frequency", "int"),
)


def make_trial(sweep_dir, method="magnitude", lr=0.1, seed=0) -> Trial:
    config = {} if method == "dense" else {"begin_step": 50, "end_step": 500, "frequency": 50}
    return Trial(
        sweep="t",
        sweep_dir=str(sweep_dir),
        trial_id=f"{method}-x-s{seed}",
        config_hash="h",
        task="cubist_spiral",
        task_options={"width": 8, "epochs": 2, "lr": lr, "eval_every": 130},
        method=method,
        method_config=config,
        target_sparsity=0.0 if method == "dense" else 0.8,
        seed=seed,
        hp_columns=HP,
    )


def table(sweep_dir, name):
    return ds.dataset(paths.table_dir(str(sweep_dir), name)).to_table().to_pandas()


class Crash(Exception):
    pass


class CrashingSession(LocalSession):
    """Dies (like a killed process) right after the n-th checkpoint is saved."""

    def __init__(self, folder, crash_after):
        super().__init__(folder)
        self.left = crash_after

    def report(self, metrics, state):
        super().report(metrics, state)
        self.left -= 1
        if self.left == 0:
            raise Crash


def test_resumed_trial_ends_with_the_same_rows_and_masks(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    row = run_trial(make_trial(straight), LocalSession(str(tmp_path / "ck1")))
    with pytest.raises(Crash):
        run_trial(make_trial(resumed), CrashingSession(str(tmp_path / "ck2"), crash_after=3))
    assert len(table(resumed, "evals")) == 3 and not (resumed / "results" / "trials").exists()
    resumed_row = run_trial(make_trial(resumed), LocalSession(str(tmp_path / "ck2")))
    assert {k: v for k, v in resumed_row.items() if k != "wall_time_s"} == {
        k: v for k, v in row.items() if k != "wall_time_s"
    }
    for name in ("evals", "trials", "layers"):
        a, b = table(straight, name), table(resumed, name)
        assert len(a) == len(b) and len(a) > 0
        cols = [c for c in a.columns if c != "wall_time_s"]
        assert a[cols].equals(b[cols]), name
    masks1 = load_state(str(tmp_path / "ck1"))["sparsifier"]["masks"]
    masks2 = load_state(str(tmp_path / "ck2"))["sparsifier"]["masks"]
    assert all(torch.equal(masks1[k], masks2[k]) for k in masks1)
    model2 = load_state(str(tmp_path / "ck2"))["engine"]["model"]
    assert all((model2[k][~m] == 0).all() for k, m in masks2.items())


def test_rows_have_the_public_schema(tmp_path):
    run_trial(make_trial(tmp_path), LocalSession(str(tmp_path / "ck")))
    trials, evals, layers = (table(tmp_path, n) for n in ("trials", "evals", "layers"))
    assert len(trials) == 1 and trials.loc[0, "status"] == "completed"
    for col in (
        "sweep",
        "trial_id",
        "task",
        "method",
        "target_sparsity",
        "sparsity",
        "metric",
        "value",
        "seed",
        "status",
        "config_hash",
        "steps",
        "wall_time_s",
        "begin_step",
        "width",
        "lr",
    ):
        assert col in trials.columns, col
    assert trials.loc[0, "steps"] == 2 * (49982 // 128) and trials.loc[0, "metric"] == "accuracy"
    assert abs(trials.loc[0, "sparsity"] - 0.8) < 0.01
    assert list(evals["step"]) == [130, 260, 390, 520, 650, 780]
    assert list(layers["layer"]) == ["0.weight", "2.weight", "4.weight", "6.weight"]
    assert (layers["numel"] == [16, 64, 64, 8]).all()
    assert ((layers["numel"] - layers["nonzero"]) / layers["numel"] - layers["sparsity"]).abs().max() < 1e-12


def test_rerun_replaces_rows_instead_of_duplicating(tmp_path):
    for _ in range(2):
        run_trial(make_trial(tmp_path), LocalSession(str(tmp_path / f"ck{_}")))
    assert len(table(tmp_path, "trials")) == 1 and len(table(tmp_path, "evals")) == 6
    assert not [p for p in (tmp_path / "results").rglob("*") if p.name.endswith(".tmp")]


def test_divergence_ends_the_trial_with_a_diverged_row(tmp_path):
    row = run_trial(make_trial(tmp_path, lr=1e30), LocalSession(str(tmp_path / "ck")))
    trials = table(tmp_path, "trials")
    assert row["status"] == "diverged" and trials.loc[0, "status"] == "diverged"
    assert trials.loc[0, "steps"] < 780


def test_seed_changes_data_order_and_init(tmp_path):
    a = run_trial(make_trial(tmp_path / "a", method="dense", seed=0), LocalSession(str(tmp_path / "c0")))
    b = run_trial(make_trial(tmp_path / "b", method="dense", seed=0), LocalSession(str(tmp_path / "c1")))
    c = run_trial(make_trial(tmp_path / "c", method="dense", seed=1), LocalSession(str(tmp_path / "c2")))
    assert a["value"] == b["value"]
    la, lc = (table(tmp_path / x, "evals")["loss"].tolist() for x in "ac")
    assert la != lc
    assert c["status"] == "completed"


def test_a_trial_whose_results_say_finished_is_not_trained_again(tmp_path):
    """The results are the record of a finished trial (Tune's snapshot may lag behind a killed driver), so a
    restart that finds its final rows reports them and trains nothing, even from a fresh checkpoint folder."""
    first = run_trial(make_trial(tmp_path), LocalSession(str(tmp_path / "ck0")))
    files = sorted((tmp_path / "results").rglob("*.parquet"))
    stamps = [f.stat().st_mtime_ns for f in files]
    reports = []
    again = run_trial(make_trial(tmp_path), LocalSession(str(tmp_path / "ck1"), on_report=reports.append))
    assert [f.stat().st_mtime_ns for f in sorted((tmp_path / "results").rglob("*.parquet"))] == stamps
    assert again["value"] == first["value"] and again["status"] == "completed"
    assert len(reports) == 1 and reports[0]["done"] and reports[0]["already_finished"]
    assert not (tmp_path / "ck1" / "state.pt").exists()  # nothing trained, nothing checkpointed
    # a trial stopped early (debug --steps) is not finished: it continues
    stopped = make_trial(tmp_path / "other")
    assert run_trial(stopped, LocalSession(str(tmp_path / "ck2")), max_steps=130)["status"] == "stopped"
    assert run_trial(stopped, LocalSession(str(tmp_path / "ck2")))["status"] == "completed"
