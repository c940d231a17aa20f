"""Sweeps on a real embedded local Ray, driven through the `sparsity` command as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pyarrow.dataset as ds
import pytest
import yaml

from sweep import plan, runner, spec
from tests.conftest import SPECS, free_port, sparsity_cli, stop_ray_under
from trainables.records import paths

pytestmark = pytest.mark.ray


def read(sweep_dir, name):
    return ds.dataset(paths.table_dir(str(sweep_dir), name)).to_table().to_pandas()


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    storage = tmp_path_factory.mktemp("store")
    result = sparsity_cli("run", os.path.join(SPECS, "tiny.yaml"), "--storage", str(storage), "--num-cpus", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    return storage, storage / "tiny", result


def test_two_trial_sweep_writes_readable_rows(tiny_sweep):
    _, sweep_dir, result = tiny_sweep
    assert "2/2 trials finished" in result.stdout
    # a count, not a line per finished trial: the last one (a log, not a terminal) says all finished
    assert re.search(r"2/2 \[.*finished 2, running 0, failed 0, diverged 0", result.stdout), result.stdout
    assert " done " not in result.stdout
    trials = read(sweep_dir, "trials")
    assert sorted(trials["method"]) == ["magnitude", "random"]
    assert (trials["status"] == "completed").all() and (trials["sweep"] == "tiny").all()
    assert ((trials["sparsity"] - 0.9).abs() < 0.01).all() and trials["value"].between(0, 1).all()
    assert trials["trial_id"].is_unique
    evals = read(sweep_dir, "evals")
    assert len(evals) == 2 * 2 and set(evals["step"]) == {390, 780}
    assert len(read(sweep_dir, "layers")) == 2 * 4
    assert (sweep_dir / "spec.yaml").exists() and (sweep_dir / "sweep.json").exists()


def test_report_from_the_sweep(tiny_sweep):
    _, sweep_dir, _ = tiny_sweep
    result = sparsity_cli("report", str(sweep_dir), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "| target sparsity | magnitude | random |" in result.stdout
    for name in ("README.md", "best.csv", "metric_vs_sparsity.png"):
        assert (sweep_dir / "report" / name).stat().st_size > 0


def test_rerun_restores_and_runs_nothing_again(tiny_sweep):
    storage, sweep_dir, _ = tiny_sweep
    files = sorted((sweep_dir / "results").rglob("*.parquet"))
    before = {p: p.stat().st_mtime_ns for p in files}
    result = sparsity_cli("run", os.path.join(SPECS, "tiny.yaml"), "--storage", str(storage), "--num-cpus", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming sweep 'tiny'" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in files} == before  # no trial ran again
    assert sorted((sweep_dir / "results").rglob("*.parquet")) == files


def test_same_name_with_another_plan_is_refused(tiny_sweep, write_spec):
    storage, sweep_dir, _ = tiny_sweep
    manifest = (sweep_dir / "sweep.json").read_bytes()
    path = write_spec("tiny.yaml", sparsity=[0.5, 0.9])
    result = sparsity_cli("run", path, "--storage", str(storage), timeout=60)
    assert result.returncode == 2
    assert "name: sweep 'tiny' already exists" in result.stderr and "(2 trials added, 0 removed)" in result.stderr
    assert (sweep_dir / "sweep.json").read_bytes() == manifest


def test_address_joins_a_running_cluster(tmp_path):
    """A head started with the `ray` command (token auth on, as Ray 2.60 does by default) runs the sweep."""
    ray_exe = os.path.join(os.path.dirname(sys.executable), "ray")
    port = free_port()
    temp_dir = f"/tmp/ray-test-{port}"  # its own: the test ends this Ray only (socket paths must stay short)
    start = subprocess.run(
        [
            ray_exe,
            "start",
            "--head",
            "--temp-dir",
            temp_dir,
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--num-cpus",
            "2",
            "--include-dashboard",
            "false",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert start.returncode == 0, start.stderr
    try:
        result = sparsity_cli(
            "run", os.path.join(SPECS, "tiny.yaml"), "--storage", str(tmp_path), "--address", f"127.0.0.1:{port}"
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert len(read(tmp_path / "tiny", "trials")) == 2
    finally:
        stop_ray_under(temp_dir)


def test_unreachable_address_fails_fast_with_one_line(tmp_path):
    result = sparsity_cli(
        "run",
        os.path.join(SPECS, "tiny.yaml"),
        "--storage",
        str(tmp_path / "s"),
        "--address",
        f"127.0.0.1:{free_port()}",
        timeout=60,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot join the Ray cluster at 127.0.0.1:" in result.stderr and "nothing answers there" in result.stderr
    assert not (tmp_path / "s").exists()


def test_trial_that_keeps_failing_gets_a_failed_row_and_the_sweep_goes_on(tmp_path, write_spec):
    """A real storage fault: a folder squats on one trial's evals file, so every write of that trial fails."""
    path = write_spec("tiny.yaml", failure={"max_failures": 1})
    parsed = spec.parse(yaml.safe_load(open(path)), path)
    broken, healthy = plan.expand(parsed, paths.sweep_dir(str(tmp_path), "tiny"))
    runner.write_manifest(broken.sweep_dir, [broken, healthy], path)  # as a first, interrupted run leaves it
    os.makedirs(paths.result_file(broken.sweep_dir, "evals", broken.trial_id))
    result = sparsity_cli("run", path, "--storage", str(tmp_path), "--num-cpus", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED" in result.stdout and "1/2 trials finished" in result.stdout
    trials = read(tmp_path / "tiny", "trials").set_index("trial_id")
    assert trials.loc[broken.trial_id, "status"] == "failed"
    assert trials.loc[healthy.trial_id, "status"] == "completed"
    report = sparsity_cli("report", str(tmp_path / "tiny"), timeout=120)
    assert report.returncode == 0 and "Trials that did not complete" in (tmp_path / "tiny/report/README.md").read_text()


def test_debug_mode_runs_the_same_trainable_without_ray(tiny_sweep, tmp_path):
    _, sweep_dir, _ = tiny_sweep
    partial = sparsity_cli(
        "debug",
        os.path.join(SPECS, "tiny.yaml"),
        "--trial",
        "1",
        "--steps",
        "20",
        "--log-every",
        "10",
        "--storage",
        str(tmp_path),
        timeout=120,
    )
    assert partial.returncode == 0, partial.stderr
    assert [line.split()[1] for line in partial.stdout.splitlines() if line.startswith("step")] == ["10", "20"]
    assert "stopped at step 20" in partial.stdout
    full = sparsity_cli(
        "debug",
        os.path.join(SPECS, "tiny.yaml"),
        "--trial",
        "1",
        "--fresh",
        "--log-every",
        "1000",
        "--storage",
        str(tmp_path),
        timeout=120,
    )
    assert full.returncode == 0 and "completed at step 780" in full.stdout, full.stdout + full.stderr
    again = sparsity_cli("debug", os.path.join(SPECS, "tiny.yaml"), "--trial", "1", "--storage", str(tmp_path))
    assert "completed at step 780" in again.stdout and not [
        x for x in again.stdout.splitlines() if x.startswith("step")
    ]
    debug_rows, ray_rows = read(tmp_path / "tiny-debug", "trials"), read(sweep_dir, "trials")
    ray_rows = ray_rows[ray_rows["trial_id"] == debug_rows.loc[0, "trial_id"]].reset_index(drop=True)
    cols = [c for c in ray_rows.columns if c != "wall_time_s"]
    assert debug_rows[cols].equals(ray_rows[cols])  # same trainable code, same numbers


def test_resume_runs_a_sweep_from_its_saved_spec(tiny_sweep):
    """`sparsity resume SWEEP_DIR` needs no spec file: the sweep folder keeps its own copy. Nothing is re-run."""
    _, sweep_dir, _ = tiny_sweep
    folder = paths.table_dir(str(sweep_dir), "trials")
    before = {f: os.stat(os.path.join(folder, f)).st_mtime_ns for f in os.listdir(folder)}
    result = sparsity_cli("resume", str(sweep_dir), "--num-cpus", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming sweep 'tiny'" in result.stdout and "2/2 trials finished" in result.stdout
    assert {f: os.stat(os.path.join(folder, f)).st_mtime_ns for f in os.listdir(folder)} == before


def test_a_diverged_trial_is_not_retried_and_the_sweep_goes_on(tmp_path, write_spec):
    """NaN/inf loss is a result, not a crash: the trial ends `diverged` with a row, Tune does not retry it
    (retries are allowed here), and the other trial completes."""
    path = write_spec("tiny.yaml", methods={"magnitude": {"begin_step": 100, "end_step": 600, "frequency": 50}})
    data = yaml.safe_load(open(path))
    data["task_options"]["lr"] = [0.1, 1000.0]
    data["failure"] = {"max_failures": 3}
    path = write_spec(data, name="diverging.yaml")
    result = sparsity_cli("run", path, "--storage", str(tmp_path), "--num-cpus", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "retrying" not in result.stdout and "DIVERGED" in result.stdout, result.stdout
    trials = read(tmp_path / "tiny", "trials").set_index("lr")
    assert trials.loc[1000.0, "status"] == "diverged" and trials.loc[1000.0, "steps"] < 780
    assert trials.loc[0.1, "status"] == "completed"
    runs = [
        line
        for log in (tmp_path / "tiny" / "tune").glob("*/result.json")
        for line in log.read_text().splitlines()
        if '"status": "diverged"' in line
    ]
    assert len(runs) == 1  # one report of divergence: the trial ran once
