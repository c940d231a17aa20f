"""Interrupted runs (issue 13): real `sparsity run` processes stopped with real signals, sent to their whole process
group as Ctrl-C in a terminal and a cluster's job stop (Slurm's scancel) send them. An interrupted run says how
many trials really finished (counted from the results, as a re-run counts them) and how to resume, and exits
128 + the signal's number; running the command it printed resumes the sweep, every row exactly once.

Also the runs that cannot start: a --num-cpus that is not a positive number, storage that cannot be written."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import psutil
import pyarrow.dataset as ds
import pytest
import yaml

from tests.conftest import SPECS, sparsity_cli
from trainables.records import paths

EXE = os.path.join(os.path.dirname(sys.executable), "sparsity")
MAGNITUDE = {"magnitude": {"begin_step": 100, "end_step": 600, "frequency": 50}}
STOPPED = re.compile(r"sparsity: interrupted \((SIG\w+)\): (\d+) of (\d+) trials finished, .*; resume with: (.*)$")


def tiny(write_spec, name: str, **changes) -> str:
    data = yaml.safe_load(open(os.path.join(SPECS, "tiny.yaml")))
    data.update(name=name, **changes)
    return write_spec(data, name=f"{name}.yaml")


def start(spec_path: str, storage, *extra: str) -> subprocess.Popen:
    """`sparsity run` in its own process group (a terminal's foreground job, a cluster job step)."""
    command = [EXE, "run", spec_path, "--storage", str(storage), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(driver: subprocess.Popen, ready, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not ready():
        assert driver.poll() is None, f"the run ended before {what}: {driver.communicate()}"
        assert time.time() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def finished_rows(sweep_dir) -> set[str]:
    """The trials whose rows say they finished: what a re-run leaves out."""
    folder = paths.table_dir(str(sweep_dir), "trials")
    if not os.path.isdir(folder) or not os.listdir(folder):
        return set()
    rows = ds.dataset(folder).to_table(columns=["trial_id", "status"]).to_pylist()
    return {r["trial_id"] for r in rows if r["status"] in ("completed", "diverged")}


def stop(driver: subprocess.Popen, sig: int) -> tuple[str, str, re.Match]:
    """Signal the driver's process group; its output and the one line that says it was interrupted."""
    os.killpg(driver.pid, sig)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 128 + sig, out + err
    said = [STOPPED.match(line) for line in err.splitlines()]
    said = [m for m in said if m]
    assert len(said) == 1 and said[0][1] == signal.Signals(sig).name, err
    assert "trials finished in" not in out, out  # the line of a run that ended
    return out, err, said[0]


def no_processes_left(group: int, timeout: float = 20) -> bool:
    """Nothing of the run's process group, nor a Ray worker it started, is still running."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.pid) == group and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except (OSError, psutil.Error):
                pass
        if not alive:
            return True
        time.sleep(0.2)
    return False


def assert_each_row_once(sweep_dir, trials: int) -> None:
    keys = {"trials": ["trial_id", "config_hash", "metric"], "evals": ["trial_id", "step", "metric"]}
    keys["layers"] = ["trial_id", "config_hash", "layer"]
    for table, key in keys.items():
        frame = ds.dataset(paths.table_dir(str(sweep_dir), table)).to_table().to_pandas()
        assert not frame.duplicated(key).any(), f"{table}: a row written twice"
        assert frame["trial_id"].nunique() == trials, f"{table}: {frame['trial_id'].nunique()} trials"


def rows_of(sweep_dir, trial_id: str) -> dict:
    out = {}
    for table in ("trials", "evals", "layers"):
        frame = ds.dataset(paths.table_dir(str(sweep_dir), table)).to_table().to_pandas()
        out[table] = frame[frame["trial_id"] == trial_id].sort_values(list(frame.columns[:12])).reset_index(drop=True)
    return out


def garble(path) -> bytes:
    """Overwrite the second half of a Parquet file (its footer metadata among it); the size stays."""
    data = bytearray(open(path, "rb").read())
    half = len(data) // 2
    data[half:-8] = bytes((b * 7 + 13) % 256 for b in data[half:-8])
    open(path, "wb").write(data)
    return bytes(data)


@pytest.mark.ray
@pytest.mark.slow
def test_sigint_during_a_trial_then_a_damaged_file_and_the_printed_command_resumes_both(tmp_path, write_spec):
    """Ctrl-C once the first of two trials has finished: not "2/2 trials finished" and exit 0 (Tune stops
    gracefully on SIGINT and returns as if it had ended), but the true count, the resume command, exit 130.
    Then the finished trial's `evals` file is garbled (tests/test_damaged_results.py has the other cases, without
    Ray). The printed command checks the files before trusting them: the damaged one is moved aside with its
    unit's intact `trials` file, said in one line; that trial runs again from the checkpoint it ended with and
    writes the very rows it had; the interrupted one resumes from its last checkpoint; every row is there once."""
    spec_path = tiny(write_spec, "stopped")  # two trials, one at a time
    storage = tmp_path / "store"
    sweep_dir = storage / "stopped"
    driver = start(spec_path, storage, "--num-cpus", "1")
    wait_for(driver, lambda: finished_rows(sweep_dir), "finished trial")
    out, err, said = stop(driver, signal.SIGINT)
    (done,) = finished_rows(sweep_dir)
    assert said.group(2, 3) == ("1", "2"), err
    assert no_processes_left(driver.pid)
    command = shlex.split(said[4])
    assert command == ["sparsity", "run", spec_path, "--storage", str(storage), "--num-cpus", "1"], err

    (other,) = set(json.loads((sweep_dir / "sweep.json").read_text())["trial_ids"]) - {done}
    checkpoints = sorted((sweep_dir / "tune" / other).glob("checkpoint_*"))
    resumes_at = 390 * len(checkpoints)  # where the interrupted trial stopped: eval_every 390, 780 steps
    before = rows_of(sweep_dir, done)
    evals = paths.result_file(str(sweep_dir), "evals", done)
    garbled = garble(evals)
    intact = open(paths.result_file(str(sweep_dir), "trials", done), "rb").read()

    again = subprocess.run([EXE, *command[1:]], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2/2 trials finished" in again.stdout, again.stdout
    aside = paths.damaged_file(str(sweep_dir), "evals", done)
    also = paths.damaged_file(str(sweep_dir), "trials", done)
    (line,) = [x for x in again.stdout.splitlines() if "is damaged" in x]
    assert line.startswith(f"sweep 'stopped': {evals} is damaged (") and line.endswith(
        f"): moved to {aside}, and its intact trials file to {also}; its trials run again"
    ), line
    assert open(aside, "rb").read() == garbled and open(also, "rb").read() == intact  # nothing lost
    after = rows_of(sweep_dir, done)
    for table in before:  # the very rows, wall times included: it resumed at its last step
        assert after[table].equals(before[table]), table
    for trial, step in ((done, 780), (other, resumes_at)):
        log = [json.loads(line) for line in open(sweep_dir / "tune" / trial / "result.json")]
        assert log[-1]["resumed_from_step"] == step, (trial, log)
    assert_each_row_once(sweep_dir, 2)


DEPENDENT = {
    "methods": MAGNITUDE,
    "task_options": {"width": 16, "epochs": 4, "eval_every": 390},
    "stages": {"reinit": {"from": "main", "variants": ["scratch_e"]}},
}


@pytest.mark.ray
@pytest.mark.slow
def test_sigterm_to_the_process_group_during_a_dependent_stage(tmp_path, write_spec):
    """A cluster's job stop (SIGTERM to every process of the job) while a dependent stage trains: Ray's own
    processes end too, so the run cannot stop gracefully; it still counts from the results, says how to resume,
    exits 143 at once (not after Ray's minute of waiting for its GCS) and leaves no process behind."""
    spec_path = tiny(write_spec, "staged-stop", **DEPENDENT)
    storage = tmp_path / "store"
    sweep_dir = storage / "staged-stop"
    driver = start(spec_path, storage, "--num-cpus", "2")
    wait_for(driver, lambda: (sweep_dir / "tune-reinit").is_dir(), "the dependent stage")
    began = time.time()
    out, err, said = stop(driver, signal.SIGTERM)
    assert time.time() - began < 10, f"took {time.time() - began:.0f} s to stop"
    assert said.group(2, 3) == ("1", "2") and len(finished_rows(sweep_dir)) == 1, err
    assert said[4] == f"sparsity run {spec_path} --storage {storage} --num-cpus 2", err
    assert no_processes_left(driver.pid)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_ray_starts(tmp_path, write_spec, sig):
    """Before Tune has started (Ray's GCS is up, the rest is starting): the same count (none finished), the
    same resume command, 128 + the signal's number, no Ray left running, nothing written but the storage root."""
    spec_path = tiny(write_spec, "early")
    storage = tmp_path / "store"
    driver = start(spec_path, storage, "--num-cpus", "1")

    def ray_starting() -> bool:
        try:
            return any(p.name() == "gcs_server" for p in psutil.Process(driver.pid).children())
        except psutil.Error:
            return False

    wait_for(driver, ray_starting, "Ray starting", timeout=60)
    out, err, said = stop(driver, sig)
    assert said.group(2, 3) == ("0", "2"), err
    assert no_processes_left(driver.pid)
    assert not (storage / "early").exists()  # the sweep folder is written once Ray has started


# -- runs that cannot start -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_num_cpus_must_be_a_positive_number(tmp_path, value):
    """--num-cpus 0 used to mean "not given" to the embedded Ray... after the sweep folder was written, and the
    run then waited forever. Now argparse refuses it: one error line, exit 2, nothing written."""
    storage = tmp_path / "store"
    result = sparsity_cli("run", os.path.join(SPECS, "tiny.yaml"), "--storage", str(storage), "--num-cpus", value)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"sparsity run: error: argument --num-cpus: {value!r} is not a whole number of CPUs above 0"
    )
    assert not storage.exists()


def unwritable(tmp_path) -> list[tuple[str, str]]:
    """(folder, what the error says about it): under a regular file, a regular file, and (not as root, who may
    write anywhere) a folder without write permission."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cases = [(str(blocker / "sub"), f"cannot be created: {blocker} is a file, not a folder")]
    cases.append((str(blocker), "is a file, not a folder"))
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases.append((str(locked / "sweeps"), "cannot write there (Permission denied)"))
    return cases


def test_storage_that_cannot_be_written_is_one_line_before_ray_starts(tmp_path):
    for folder, why in unwritable(tmp_path):
        began = time.time()
        result = sparsity_cli("run", os.path.join(SPECS, "tiny.yaml"), "--storage", folder, timeout=60)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.splitlines() == [f"sparsity: error: storage {folder}: {why}"], result.stderr
        assert "Ray" not in result.stdout and time.time() - began < 12  # Ray alone takes longer to start


def test_report_out_that_cannot_be_written_is_one_line(tmp_path, capsys):
    from sweep.cli import main

    for folder, why in unwritable(tmp_path):
        assert main(["report", str(tmp_path), "--out", folder]) == 2
        assert capsys.readouterr().err.splitlines() == [f"sparsity: error: --out {folder}: {why}"]
