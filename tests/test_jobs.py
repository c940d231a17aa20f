"""`sparsity submit`, `status`, `logs` and `resume` against a real local two-node Ray cluster started by the
bundled script (cluster/local_cluster.sh), and the working-dir checks of cluster/jobs.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.dataset as ds
import pytest

from cluster import ClusterError, jobs
from tests.conftest import SPECS, free_port, sparsity_cli
from trainables.records import paths

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "cluster", "local_cluster.sh")


def test_staged_working_dir_holds_the_packages_and_the_spec_only(tmp_path):
    files = {path for _, path in jobs.stage(os.path.join(SPECS, "tiny.yaml"), str(tmp_path))}
    assert "spec.yaml" in files and "pyproject.toml" in files and "sweep/cli.py" in files
    assert not any(p.startswith((".git", ".venv", "sweeps", "tests")) or "__pycache__" in p for p in files)


def test_an_oversized_working_dir_is_refused_naming_the_biggest_files():
    files = [(60 * 1024**2, "data/big.npz"), (50 * 1024**2, "ckpt/model.pt"), (10, "sweep/cli.py")]
    with pytest.raises(ClusterError) as e:
        jobs.check_size(files)
    message = str(e.value)
    assert "\n" not in message and "110.0 MiB" in message and message.index("data/big.npz") < message.index("ckpt")


def test_an_unreachable_job_server_is_one_line(tmp_path):
    result = sparsity_cli(
        "submit", os.path.join(SPECS, "tiny.yaml"), "--address", f"http://127.0.0.1:{free_port()}", timeout=120
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot reach the Ray job server" in result.stderr


@pytest.fixture(scope="module")
def two_nodes():
    env = {**os.environ, "RAY_PORT": str(free_port()), "DASHBOARD_PORT": str(free_port()), "RAY": ""}
    env["RAY"] = os.path.join(os.path.dirname(sys.executable), "ray")
    start = subprocess.run(["bash", SCRIPT, "start", "2"], capture_output=True, text=True, timeout=180, env=env)
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        yield f"http://127.0.0.1:{env['DASHBOARD_PORT']}"
    finally:
        subprocess.run(["bash", SCRIPT, "stop"], capture_output=True, timeout=120, env=env)


@pytest.mark.ray
def test_submitted_sweep_completes_resubmits_idempotently_and_reports(two_nodes, tmp_path):
    spec = os.path.join(SPECS, "tiny.yaml")
    storage = str(tmp_path / "store")
    first = sparsity_cli("submit", spec, "--address", two_nodes, "--storage", storage, "--wait", "300", timeout=400)
    assert first.returncode == 0, (
        first.stdout + first.stderr + sparsity_cli("logs", "tiny", "--address", two_nodes).stdout
    )
    assert "as job sparsity-tiny-1" in first.stdout and "SUCCEEDED" in first.stdout
    sweep = os.path.join(storage, "tiny")
    trials = ds.dataset(paths.table_dir(sweep, "trials")).to_table().to_pandas()
    assert sorted(trials["method"]) == ["magnitude", "random"] and (trials["status"] == "completed").all()
    stamps = {
        f: os.stat(os.path.join(paths.table_dir(sweep, "trials"), f)).st_mtime_ns
        for f in os.listdir(paths.table_dir(sweep, "trials"))
    }

    # the same command again: a new job that restores the sweep and re-runs nothing
    again = sparsity_cli("submit", spec, "--address", two_nodes, "--storage", storage, "--wait", "300", timeout=400)
    assert again.returncode == 0 and "as job sparsity-tiny-2" in again.stdout, again.stdout + again.stderr
    after = {
        f: os.stat(os.path.join(paths.table_dir(sweep, "trials"), f)).st_mtime_ns
        for f in os.listdir(paths.table_dir(sweep, "trials"))
    }
    assert after == stamps  # no trial wrote its rows again
    logs = sparsity_cli("logs", "tiny", "--address", two_nodes, timeout=60)
    assert "--- logs of job sparsity-tiny-2 ---" in logs.stdout and "resuming sweep 'tiny'" in logs.stdout

    status = sparsity_cli("status", sweep, "--address", two_nodes, timeout=60)
    assert "2 trials planned; 2 completed" in status.stdout, status.stdout + status.stderr
    assert "sparsity-tiny-1" in status.stdout and "sparsity-tiny-2" in status.stdout
    report = sparsity_cli("report", sweep, timeout=120)
    assert report.returncode == 0 and "| 0.9 |" in report.stdout

    # a different plan under the same name is refused before anything is submitted
    changed = tmp_path / "changed.yaml"
    changed.write_text(open(spec).read().replace("sparsity: [0.9]", "sparsity: [0.8]"))
    refused = sparsity_cli("submit", str(changed), "--address", two_nodes, "--storage", storage, timeout=120)
    assert refused.returncode == 2 and "different plan" in refused.stderr, refused.stderr


@pytest.mark.parametrize("name", sorted(os.listdir(os.path.join(ROOT, "cluster", "configs"))))
def test_bundled_cluster_configs_parse_and_name_their_command(name):
    import yaml

    path = os.path.join(ROOT, "cluster", "configs", name)
    with open(path) as f:
        text = f.read()
    assert yaml.safe_load(text)
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any(("ray up" in h or "kubectl apply" in h) for h in header), "the header gives the command that uses it"


def test_sparsity_resume_needs_a_sweep_folder(tmp_path):
    result = sparsity_cli("resume", str(tmp_path), timeout=60)
    assert result.returncode == 2 and "not a sweep folder" in result.stderr and result.stderr.count("\n") == 1
