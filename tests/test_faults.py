"""Fault injection (issue 6): real processes killed with real signals during small sweeps on a real local Ray.

Each test compares the interrupted sweep with an uninterrupted run of the same trials (in-process, the debug
mode's code path): every result row, and the masks, sparsifier state, weights, optimizer state and RNG state of
the checkpoint each trial ended with."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from typing import Any

import psutil
import pyarrow.dataset as ds
import pytest
import torch
import yaml

from sweep import plan, spec
from tests.conftest import SPECS, free_port
from trainables.records import paths
from trainables.training.loop import run_trial
from trainables.training.session import STATE_FILE, LocalSession, load_state

pytestmark = [pytest.mark.ray, pytest.mark.slow]

BIN = os.path.dirname(sys.executable)
EXE = os.path.join(BIN, "sparsity")


class Recording(LocalSession):
    """A local session that keeps a copy of every checkpointed state, by step."""

    def __init__(self, folder: str):
        super().__init__(folder)
        self.states: dict[int, dict[str, Any]] = {}

    def report(self, metrics, state):
        super().report(metrics, state)
        if state is not None:
            self.states[state["step"]] = load_state(self.folder)  # what was written: a copy, not live tensors


def uninterrupted(spec_path: str, folder) -> tuple[str, dict[str, dict[int, dict[str, Any]]]]:
    """Run every trial of the spec in-process, one after the other; its sweep folder and every trial's states."""
    parsed = spec.load(spec_path)
    sweep_dir = paths.sweep_dir(str(folder), parsed.name)
    states = {}
    for trial in plan.expand(parsed, sweep_dir, spec_path):
        session = Recording(os.path.join(str(folder), "checkpoints", trial.trial_id))
        run_trial(trial, session)
        states[trial.trial_id] = session.states
    return sweep_dir, states


def read(sweep_dir, table: str):
    frame = ds.dataset(paths.table_dir(str(sweep_dir), table)).to_table().to_pandas()
    keys = [c for c in ("trial_id", "config_hash", "metric", "step", "layer") if c in frame.columns]
    return frame.drop(columns="wall_time_s", errors="ignore").sort_values(keys).reset_index(drop=True)


def assert_same_rows(sweep_dir, baseline_dir) -> None:
    """Every table holds exactly the uninterrupted run's rows: none lost, none duplicated, same values."""
    for table in ("trials", "evals", "layers"):
        got, want = read(sweep_dir, table), read(baseline_dir, table)
        assert len(got) == len(want) > 0, f"{table}: {len(got)} rows, uninterrupted run {len(want)}"
        assert got.equals(want), f"{table}: rows differ from the uninterrupted run"


def identical(a: Any, b: Any, where: str = "state") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            identical(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def latest_checkpoint(trial_dir) -> dict[str, Any]:
    folders = sorted(p for p in os.listdir(trial_dir) if p.startswith("checkpoint_"))
    assert folders, f"{trial_dir}: no checkpoint"
    return load_state(os.path.join(trial_dir, folders[-1]), STATE_FILE)


def assert_same_states(sweep_dir, baseline_states) -> int:
    """Each trial's last checkpoint equals the uninterrupted run's state at the same step: masks, sparsifier
    state, weights, optimizer and RNG. Returns how many trials were compared at their final step."""
    final = 0
    for trial_id, states in baseline_states.items():
        got = latest_checkpoint(os.path.join(paths.tune_dir(str(sweep_dir)), trial_id))
        want = states[got["step"]]
        for key in ("sparsifier", "engine", "rng", "step"):
            identical(got[key], want[key], f"{trial_id}:{key}")
        final += got["step"] == max(states)
    return final


def trial_workers(under: psutil.Process | None = None) -> list[psutil.Process]:
    """Processes running a Tune trial (Ray names them after the function trainable)."""
    procs = under.children(recursive=True) if under else psutil.process_iter()
    found = []
    for proc in procs:
        try:
            if "ray::ImplicitFunc" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def long_spec(write_spec, name: str, **overrides) -> str:
    data = yaml.safe_load(open(os.path.join(SPECS, "tiny.yaml")))
    data.update(
        name=name,
        task_options={"width": 16, "epochs": 10, "eval_every": 195},  # 20 checkpoints per trial
        methods={
            "magnitude": {"begin_step": 100, "end_step": 3000, "frequency": 50},
            "random": {"begin_step": 100, "end_step": 3000, "frequency": 50},
        },
        sparsity=[0.8, 0.9],
        failure={"max_failures": 20},
        **overrides,
    )
    return write_spec(data, name=f"{name}.yaml")


def test_random_sigkills_of_trial_workers_change_no_row_and_no_state(tmp_path, write_spec):
    """SIGKILL a random running trial process at random moments (a fixed seed draws them), six times, while
    four trials run two at a time; every trial resumes from its last checkpoint and ends exactly as if never
    interrupted."""
    spec_path = long_spec(write_spec, "random-kills")
    storage = tmp_path / "store"
    driver = subprocess.Popen(
        [EXE, "run", spec_path, "--storage", str(storage), "--num-cpus", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    draw, kills, killed = random.Random(6), 0, []
    try:
        deadline = time.time() + 240
        while kills < 6 and driver.poll() is None and time.time() < deadline:
            time.sleep(draw.uniform(1.0, 3.0))
            if kills >= 3 and not list(storage.glob("random-kills/tune/*/checkpoint_*")):
                continue  # the later kills wait for a first checkpoint (a slow machine reaches it late)
            workers = trial_workers(psutil.Process(driver.pid))
            if not workers:
                continue
            victim = draw.choice(workers)
            try:
                victim.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                continue
            kills += 1
            killed.append(victim.pid)
        out, _ = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, out
    assert kills == 6, f"only {kills} kills landed before the sweep ended:\n{out}"
    assert "4/4 trials finished" in out and out.count("retrying") >= 1, out

    baseline_dir, states = uninterrupted(spec_path, tmp_path / "baseline")
    assert_same_rows(storage / "random-kills", baseline_dir)
    assert assert_same_states(storage / "random-kills", states) >= 3
    assert resumed_mid_trial(storage / "random-kills") >= 1, "no kill landed after a trial's first checkpoint"


def resumed_mid_trial(sweep_dir) -> int:
    """How many trials reported results after resuming from a checkpoint (not from step 0)."""
    count = 0
    for trial in os.listdir(paths.tune_dir(str(sweep_dir))):
        log = os.path.join(paths.tune_dir(str(sweep_dir)), trial, "result.json")
        if os.path.exists(log):
            lines = open(log).read().splitlines()
            count += any('"resumed_from_step"' in x and '"resumed_from_step": 0' not in x for x in lines)
    return count


def test_sigkilled_driver_then_same_command_finishes_without_rerunning(tmp_path, write_spec):
    """Kill the whole driver (its process group: the embedded Ray and the trials die with it) once some trials
    have finished; the same command again restores the sweep, re-runs none of the finished trials, and ends
    with the uninterrupted run's rows and states."""
    data = yaml.safe_load(open(os.path.join(SPECS, "tiny.yaml")))
    data.update(name="driver-killed", sparsity=[0.5, 0.8, 0.9], seeds=[0, 1])
    spec_path = write_spec(data)
    storage = tmp_path / "store"
    command = [EXE, "run", spec_path, "--storage", str(storage), "--num-cpus", "2"]
    trials_dir = storage / "driver-killed" / "results" / "trials"

    def finished() -> dict[str, int]:
        if not trials_dir.is_dir():
            return {}
        return {f: os.stat(trials_dir / f).st_mtime_ns for f in os.listdir(trials_dir) if not f.startswith(".")}

    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 180
    while len(finished()) < 3 and time.time() < deadline and driver.poll() is None:
        time.sleep(0.05)
    before = finished()
    assert driver.poll() is None and 3 <= len(before) < 12, f"{len(before)} trials done when the kill was due"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    time.sleep(2)  # let the orphaned Ray processes notice

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming sweep 'driver-killed'" in again.stdout and "12/12 trials finished" in again.stdout
    after = finished()
    rerun = [f for f in before if after[f] != before[f]]
    assert rerun == [], f"{len(rerun)} of {len(before)} finished trials were run again"

    baseline_dir, states = uninterrupted(spec_path, tmp_path / "baseline")
    assert_same_rows(storage / "driver-killed", baseline_dir)
    assert_same_states(storage / "driver-killed", states)


def _raylet(marker: str) -> psutil.Process | None:
    for proc in psutil.process_iter():
        try:
            line = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "raylet" in proc.name() and marker in line:
            return proc
    return None


def test_sigkilled_raylet_on_a_two_node_cluster_moves_its_trials_to_the_other_node(tmp_path, write_spec):
    """The bundled two-node cluster (cluster/local_cluster.sh): SIGKILL the second node's raylet while it runs
    trials; they die with it, Tune restarts them from their last checkpoints on the head node, and the sweep
    ends with the uninterrupted run's rows and states."""
    script = os.path.join(os.path.dirname(SPECS), "..", "cluster", "local_cluster.sh")
    port = free_port()
    env = {**os.environ, "RAY_PORT": str(port), "DASHBOARD_PORT": str(free_port()), "RAY": os.path.join(BIN, "ray")}
    start = subprocess.run(["bash", script, "start", "2"], capture_output=True, text=True, timeout=180, env=env)
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        second = _raylet(f"ray-cluster-{port}/second/")
        assert second is not None, "the second node's raylet is not running"
        spec_path = long_spec(write_spec, "raylet-killed")
        storage = tmp_path / "store"
        driver = subprocess.Popen(
            [EXE, "run", spec_path, "--storage", str(storage), "--address", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        tune_dir = storage / "raylet-killed" / "tune"
        deadline, victims = time.time() + 180, []
        while driver.poll() is None and time.time() < deadline:
            victims = [p.pid for p in trial_workers(second)]
            if victims and tune_dir.is_dir() and list(tune_dir.glob("*/checkpoint_000002")):
                break
            time.sleep(0.05)
        assert victims and driver.poll() is None, "no trial ran on the second node"
        second.send_signal(signal.SIGKILL)
        out, _ = driver.communicate(timeout=300)
    finally:
        if "driver" in locals() and driver.poll() is None:
            driver.kill()
        subprocess.run(["bash", script, "stop"], capture_output=True, timeout=120, env=env)
    assert driver.returncode == 0, out
    assert "4/4 trials finished" in out, out

    moved = []
    for log in tune_dir.glob("*/result.json"):
        pids = [json.loads(line).get("pid") for line in log.read_text().splitlines()]
        if set(pids) & set(victims):
            assert pids[-1] not in victims  # it ended in a process on the surviving node
            moved.append(log.parent.name)
    assert moved, f"no trial that ran on the killed node reported afterwards:\n{out}"

    baseline_dir, states = uninterrupted(spec_path, tmp_path / "baseline")
    assert_same_rows(storage / "raylet-killed", baseline_dir)
    assert_same_states(storage / "raylet-killed", states)
