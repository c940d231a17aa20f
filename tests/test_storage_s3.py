"""Sweeps stored on S3: a real S3 protocol endpoint on loopback (moto's server, its own process), reached the
standard way (AWS_ENDPOINT_URL and credentials in the environment). Results, manifest, spec copy, Tune
checkpoints, artifacts and the report are written there and read back; resume, status and errors work as on a
local path."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
import torch

from tests.conftest import SPECS, sparsity_cli

pytestmark = pytest.mark.ray

BUCKET = "sweeps-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on a free loopback port, a bucket in it, and the environment that points at it."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "moto's server did not start"
                time.sleep(0.1)
        fs = pafs.S3FileSystem(  # the test's own view of the bucket, configured explicitly
            endpoint_override=f"127.0.0.1:{port}",
            scheme="http",
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
            allow_bucket_creation=True,
        )
        fs.create_dir(BUCKET)
        yield fs, {**os.environ, **env}  # the `sparsity` commands find the endpoint as users do: in the environment
    finally:
        server.kill()
        server.wait(timeout=30)


def files(fs, prefix: str) -> dict[str, int]:
    """Every object under `prefix`, with its modification time."""
    infos = fs.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
    return {i.path: i.mtime_ns for i in infos if i.type == pafs.FileType.File}


def test_a_sweep_on_s3_writes_results_checkpoints_and_report_there_and_resumes(s3, tmp_path):
    fs, env = s3
    storage = f"s3://{BUCKET}/sweeps"
    spec = os.path.join(SPECS, "tiny.yaml")
    first = sparsity_cli("run", spec, "--storage", storage, "--num-cpus", "2", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "results in s3://sweeps-test/sweeps/tiny/results" in first.stdout

    stored = files(fs, f"{BUCKET}/sweeps/tiny")
    names = {p.split("/sweeps/tiny/", 1)[1] for p in stored}
    assert {"sweep.json", "spec.yaml"} <= names
    assert sum(n.startswith("results/trials/") for n in names) == 2
    checkpoints = sorted(n for n in names if n.startswith("tune/") and "/checkpoint_" in n and n.endswith("state.pt"))
    assert checkpoints, names
    with fs.open_input_stream(f"{BUCKET}/sweeps/tiny/{checkpoints[-1]}") as f:
        state = torch.load(io.BytesIO(f.read()), weights_only=True)  # no code runs when a checkpoint loads
    assert state["step"] == 780 and state["sparsifier"]["masks"]
    assert sum(n.startswith("artifacts/") and n.endswith("masks.pt") for n in names) == 2
    assert not [n for n in names if n.startswith("results/") and not n.endswith(".parquet")]  # no pickles

    trials = ds.dataset(f"{BUCKET}/sweeps/tiny/results/trials", filesystem=fs).to_table().to_pandas()
    assert sorted(trials["method"]) == ["magnitude", "random"] and (trials["status"] == "completed").all()

    again = sparsity_cli("run", spec, "--storage", storage, "--num-cpus", "2", env=env)
    assert again.returncode == 0 and "resuming sweep 'tiny'" in again.stdout, again.stdout + again.stderr
    after = files(fs, f"{BUCKET}/sweeps/tiny/results")
    assert after == {p: t for p, t in stored.items() if "/results/" in p}  # no trial wrote its rows again

    status = sparsity_cli("status", f"{storage}/tiny", env=env, timeout=60)
    assert "2 trials planned; 2 completed" in status.stdout, status.stdout + status.stderr
    report = sparsity_cli("report", f"{storage}/tiny", env=env, timeout=120)
    assert report.returncode == 0 and "| 0.9 |" in report.stdout, report.stdout + report.stderr
    assert f"{BUCKET}/sweeps/tiny/report/README.md" in files(fs, f"{BUCKET}/sweeps/tiny/report")

    changed = tmp_path / "changed.yaml"
    changed.write_text(open(spec).read().replace("sparsity: [0.9]", "sparsity: [0.8]"))
    refused = sparsity_cli("run", str(changed), "--storage", storage, "--num-cpus", "2", env=env)
    assert refused.returncode == 2 and "different plan" in refused.stderr, refused.stderr


def test_a_missing_bucket_or_a_dead_endpoint_is_one_line_before_ray_starts(s3):
    fs, env = s3
    spec = os.path.join(SPECS, "tiny.yaml")
    missing = sparsity_cli("run", spec, "--storage", "s3://no-such-bucket/x", env=env, timeout=60)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "bucket 'no-such-bucket' does not exist" in missing.stderr
    dead = {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}"}
    unreachable = sparsity_cli("run", spec, "--storage", f"s3://{BUCKET}/x", env=dead, timeout=120)
    assert unreachable.returncode == 2 and unreachable.stderr.count("\n") == 1, unreachable.stderr
    assert "cannot reach the endpoint" in unreachable.stderr
