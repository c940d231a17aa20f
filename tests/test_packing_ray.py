"""Packed sweeps on a real local Ray (issue 12): a pack's process killed with SIGKILL, a driver killed midway and
the sweep re-run with other packs, and the packed demo against the unpacked one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pandas as pd
import psutil
import pyarrow.dataset as ds
import pytest
import yaml

from sweep import plan, spec
from sweep.cli import demo_spec
from tests.test_faults import EXE, trial_workers
from trainables.packing.loop import run_pack
from trainables.packing.pack import Pack
from trainables.records import paths
from trainables.training.session import LocalSession

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def packed_spec(write_spec, name: str, pack) -> str:
    return write_spec(
        {
            "name": name,
            "task": "cubist_spiral",
            "task_options": {"width": 8, "epochs": 4, "lr": [0.05, 0.1], "eval_every": 130},
            "methods": {
                "magnitude": {"begin_step": 50, "end_step": 1200, "frequency": 50},
                "random": {"begin_step": 50, "end_step": 1200, "frequency": 50},
            },
            "sparsity": [0.9, 0.95],
            "seeds": [0, 1, 2],
            "resources": {"pack": pack},
            "failure": {"max_failures": 5},
        },
        name=f"{name}.yaml",
    )


def read(sweep_dir, table: str) -> pd.DataFrame:
    frame = ds.dataset(paths.table_dir(str(sweep_dir), table)).to_table().to_pandas()
    keys = [c for c in ("trial_id", "config_hash", "metric", "step", "layer") if c in frame.columns]
    return frame.drop(columns="wall_time_s", errors="ignore").sort_values(keys).reset_index(drop=True)


def mtimes(folder) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*.parquet")}


def test_a_killed_pack_is_retried_and_ends_as_if_never_interrupted(tmp_path, write_spec):
    spec_path = packed_spec(write_spec, "pack-killed", 4)
    storage = tmp_path / "store"
    sweep_dir = storage / "pack-killed"
    driver = subprocess.Popen(
        [EXE, "run", spec_path, "--storage", str(storage), "--num-cpus", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killed = 0
    try:
        deadline = time.time() + 180
        while not killed and driver.poll() is None and time.time() < deadline:
            time.sleep(0.2)
            checkpoints = list((sweep_dir / "tune").glob("pack-*/checkpoint_*"))
            workers = trial_workers(psutil.Process(driver.pid))
            if checkpoints and workers:  # a pack is mid-run, past its first checkpoint
                workers[0].send_signal(signal.SIGKILL)
                killed += 1
        out, _ = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0 and killed == 1, out
    assert "24/24 trials finished" in out and "retrying" in out, out
    assert "24 trials as 6 Tune trials" in out, out

    # the same packs run uninterrupted in this process: every row the same (wall times aside)
    layout = json.loads((sweep_dir / "packs" / "layout-main.json").read_text())
    trials = {t.trial_id: t for t in plan.expand(spec.load(spec_path), str(tmp_path / "baseline" / "pack-killed"))}
    for unit, members in layout["units"].items():
        run_pack(Pack(unit, tuple(trials[m] for m in members)), LocalSession(str(tmp_path / "ckpt" / unit)))
    for table in paths.TABLES:
        got, want = read(sweep_dir, table), read(tmp_path / "baseline" / "pack-killed", table)
        assert len(got) == len(want) > 0 and got.equals(want), table

    # other packs next time: every trial finished, so nothing trains and no file changes
    before = mtimes(sweep_dir / "results")
    data = yaml.safe_load(open(spec_path))
    data["resources"]["pack"] = 6
    open(spec_path, "w").write(yaml.safe_dump(data))
    again = subprocess.run(
        [EXE, "run", spec_path, "--storage", str(storage), "--num-cpus", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0 and "all 24 trials had already finished" in again.stdout, again.stdout + again.stderr
    assert mtimes(sweep_dir / "results") == before


def test_a_driver_killed_midway_then_run_with_other_packs_trains_each_trial_once(tmp_path, write_spec):
    spec_path = packed_spec(write_spec, "repacked", 4)
    storage = tmp_path / "store"
    sweep_dir = storage / "repacked"
    command = [EXE, "run", spec_path, "--storage", str(storage), "--num-cpus", "2"]
    trials_dir = sweep_dir / "results" / "trials"
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and driver.poll() is None:
        done = [p for p in trials_dir.glob("pack-*.parquet")] if trials_dir.is_dir() else []
        if done:
            break
        time.sleep(0.05)
    time.sleep(0.5)  # the next packs are mid-run
    assert driver.poll() is None, "the sweep ended before the kill"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    time.sleep(2)
    finished_files = {str(p): p.stat().st_mtime_ns for p in trials_dir.glob("*.parquet")}
    finished = set(ds.dataset(str(trials_dir)).to_table().to_pandas()["trial_id"])
    assert 0 < len(finished) < 24

    data = yaml.safe_load(open(spec_path))
    data["resources"]["pack"] = 6
    open(spec_path, "w").write(yaml.safe_dump(data))
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "24/24 trials finished" in again.stdout, again.stdout + again.stderr
    assert f"24 trials ({len(finished)} already finished) as" in again.stdout, again.stdout  # the rest were packed

    trials, evals = read(sweep_dir, "trials"), read(sweep_dir, "evals")
    assert trials["trial_id"].is_unique and len(trials) == 24 and (trials["status"] == "completed").all()
    assert not evals.duplicated(["trial_id", "step", "metric"]).any()  # no row twice, whatever pack wrote it
    assert (evals.groupby("trial_id")["step"].apply(sorted).apply(len) == 12).all()
    assert not read(sweep_dir, "layers").duplicated(["trial_id", "layer"]).any()
    for path, mtime in finished_files.items():  # the finished trials' files were never rewritten
        if os.path.exists(path):
            assert os.stat(path).st_mtime_ns == mtime, path


def test_the_packed_demo_gives_the_demo_table(tmp_path, write_spec):
    """The demo's recipe at two of its sparsities (10 trials), packed and unpacked: the same table within seed
    noise (packing changes only float rounding, which 6,240 steps amplify: one seed's accuracy can move by 0.2).
    How much faster packing is, is measured in bench/packing.py, not asserted here."""
    data = yaml.safe_load(open(demo_spec()))
    data.update(sparsity=[0.5, 0.9])
    timings, tables = {}, {}
    for pack in ("auto", 1):
        data.update(name=f"demo-{pack}", resources={**data["resources"], "pack": pack})
        path = write_spec(data, name=f"demo-{pack}.yaml")
        started = time.perf_counter()
        result = subprocess.run(
            [EXE, "run", path, "--storage", str(tmp_path), "--num-cpus", "2"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        timings[pack] = time.perf_counter() - started
        assert result.returncode == 0 and "10/10 trials finished" in result.stdout, result.stdout + result.stderr
        rows = read(tmp_path / f"demo-{pack}", "trials")
        tables[pack] = rows.groupby(["method", "target_sparsity"])["value"].agg(["mean", "std"])
    print(f"demo wall time: packed {timings['auto']:.0f} s, unpacked {timings[1]:.0f} s")
    packed, unpacked = tables["auto"], tables[1]
    assert list(packed.index) == list(unpacked.index)
    noise = 2 * (packed["std"].fillna(0) + unpacked["std"].fillna(0)) + 0.01
    assert ((packed["mean"] - unpacked["mean"]).abs() <= noise).all(), pd.concat([packed, unpacked], axis=1)
