"""Sweeps stored on S3: a real S3 endpoint on loopback (moto's server, a separate process), the real `sparsity`
command, a real embedded Ray. Nothing is mocked: pyarrow and Ray Tune talk HTTP to the server as they would to
AWS or MinIO, configured the standard way (AWS_ENDPOINT_URL and the AWS credential variables)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
import torch

from tests.conftest import SPECS, free_port, sparsity_cli
from trainables.training.session import STATE_FILE

pytestmark = pytest.mark.ray

BUCKET = "research"
STORAGE = f"s3://{BUCKET}/sweeps"
SWEEP = f"{STORAGE}/tiny"
TINY = os.path.join(SPECS, "tiny.yaml")


def _wait_until_answering(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"moto server exited with {server.returncode}")
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"moto server did not answer at {url} within {timeout} s")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on a free loopback port with one bucket; yields (fs, env, port): a pyarrow filesystem
    for checking the bucket from here, and the environment the `sparsity` subprocesses run with."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path_factory.mktemp("moto") / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_until_answering(url, server)
        keys = {"access_key": "testing", "secret_key": "testing", "region": "us-east-1"}
        admin = pafs.S3FileSystem(
            **keys, endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True
        )
        admin.create_dir(BUCKET)
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",  # never wait for an instance-metadata service
        }
        env.pop("AWS_PROFILE", None)
        env.pop("SPARSITY_STORAGE", None)
        yield pafs.S3FileSystem(**keys, endpoint_override=f"127.0.0.1:{port}", scheme="http"), env, port
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def s3_sweep(s3, tmp_path_factory):
    fs, env, _ = s3
    cwd = tmp_path_factory.mktemp("cwd")
    result = sparsity_cli("run", TINY, "--storage", STORAGE, "--num-cpus", "2", env=env, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return fs, env, cwd, result


def _key(uri: str) -> str:
    return uri.removeprefix("s3://")


def _objects(fs, prefix: str) -> dict[str, tuple[int, int]]:
    """(mtime in ns, size) of every object under a prefix."""
    infos = fs.get_file_info(pafs.FileSelector(_key(prefix), recursive=True, allow_not_found=True))
    return {i.path: (i.mtime_ns, i.size) for i in infos if i.type == pafs.FileType.File}


def _table(fs, name: str):
    return ds.dataset(f"{_key(SWEEP)}/results/{name}", format="parquet", filesystem=fs).to_table().to_pandas()


def test_sweep_on_s3_writes_results_manifest_and_checkpoints(s3_sweep):
    fs, _, cwd, result = s3_sweep
    assert "2/2 trials finished" in result.stdout and f"results in {SWEEP}/results" in result.stdout
    assert os.listdir(cwd) == []  # nothing written to a local folder named after the URI
    trials = _table(fs, "trials")
    assert len(trials) == 2 and (trials["status"] == "completed").all()
    assert sorted(trials["method"]) == ["magnitude", "random"]
    assert len(_table(fs, "evals")) == 2 * 2
    with fs.open_input_stream(f"{_key(SWEEP)}/sweep.json") as f:
        manifest = json.loads(f.read())
    assert sorted(manifest["trial_ids"]) == sorted(trials["trial_id"])
    assert fs.get_file_info(f"{_key(SWEEP)}/spec.yaml").size == os.path.getsize(TINY)
    for trial_id in trials["trial_id"]:
        folder = f"{_key(SWEEP)}/tune/{trial_id}"
        checkpoints = sorted(
            i.base_name for i in fs.get_file_info(pafs.FileSelector(folder)) if i.base_name.startswith("checkpoint_")
        )
        assert checkpoints, f"no Tune checkpoint of {trial_id} in the bucket"
        with fs.open_input_stream(f"{folder}/{checkpoints[-1]}/{STATE_FILE}") as f:
            state = torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)
        assert state["step"] == 780 and state["sparsifier"]["masks"]
    names = [p.split("/tiny/", 1)[1] for p in _objects(fs, SWEEP)]
    assert sum(n.startswith("artifacts/") and n.endswith("/masks.pt") for n in names) == 2  # for later stages
    assert not [n for n in names if n.startswith("results/") and not n.endswith(".parquet")]  # no temporary files


def test_rerun_and_resume_from_s3_run_nothing_again(s3_sweep):
    fs, env, cwd, _ = s3_sweep
    before = _objects(fs, f"{SWEEP}/results")
    assert len(before) == 3 * 2
    again = sparsity_cli("run", TINY, "--storage", STORAGE, "--num-cpus", "2", env=env, cwd=cwd)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming sweep 'tiny' from {SWEEP}/tune" in again.stdout and "2/2 trials finished" in again.stdout
    assert _objects(fs, f"{SWEEP}/results") == before  # no trial ran again
    resumed = sparsity_cli("resume", SWEEP, "--num-cpus", "2", env=env, cwd=cwd)  # from the spec kept in the bucket
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming sweep 'tiny'" in resumed.stdout and "2/2 trials finished" in resumed.stdout
    assert _objects(fs, f"{SWEEP}/results") == before


def test_status_and_report_of_an_s3_sweep(s3_sweep):
    fs, env, cwd, _ = s3_sweep
    status = sparsity_cli("status", "tiny", "--storage", STORAGE, env=env, cwd=cwd, timeout=60)
    assert status.returncode == 0, status.stderr
    assert f"sweep 'tiny' at {SWEEP}: 2 trials planned; 2 completed; 0 in progress" in status.stdout
    report = sparsity_cli("report", SWEEP, env=env, cwd=cwd, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "| target sparsity | magnitude | random |" in report.stdout
    assert (
        f"report: {SWEEP}/report/README.md" in report.stdout and f"page:   {SWEEP}/report/index.html" in report.stdout
    )
    for name in ("README.md", "index.html", "best.csv", "metric_vs_sparsity.png", "metric_vs_sparsity.svg"):
        assert fs.get_file_info(f"{_key(SWEEP)}/report/{name}").size > 0
    assert os.listdir(cwd) == []


def test_endpoint_given_in_the_uri_instead_of_the_environment(s3_sweep, s3):
    """pyarrow's URI options (?endpoint_override=...&scheme=http) stay at the end of every path built from it."""
    _, env, port = s3
    env = {k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL"}
    uri = f"{STORAGE}?endpoint_override=127.0.0.1:{port}&scheme=http"
    status = sparsity_cli("status", "tiny", "--storage", uri, env=env, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "2 trials planned; 2 completed" in status.stdout


def test_same_name_with_another_plan_is_refused_on_s3(s3_sweep, write_spec):
    fs, env, cwd, _ = s3_sweep
    manifest = f"{_key(SWEEP)}/sweep.json"
    before = fs.get_file_info(manifest).mtime_ns
    result = sparsity_cli(
        "run", write_spec("tiny.yaml", sparsity=[0.5, 0.9]), "--storage", STORAGE, env=env, timeout=60
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "name: sweep 'tiny' already exists" in result.stderr and "(2 trials added, 0 removed)" in result.stderr
    assert fs.get_file_info(manifest).mtime_ns == before


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparsity: error: "), result.stderr
    assert "trials ->" not in result.stdout  # refused before Ray started
    return lines[0]


@pytest.mark.parametrize(
    "storage, endpoint, expected",
    [
        ("s3://no-such-bucket/sweeps", None, "bucket 'no-such-bucket' does not exist at http://127.0.0.1:"),
        (STORAGE, "unreachable", "cannot reach the endpoint http://127.0.0.1:"),
        (f"{STORAGE}?no_such_option=1", None, "Unexpected query parameter in S3 URI: 'no_such_option'"),
    ],
)
def test_unusable_storage_fails_before_ray_with_one_line(s3, storage, endpoint, expected):
    _, env, _ = s3
    if endpoint == "unreachable":
        env = {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    line = _one_line_error(sparsity_cli("run", TINY, "--storage", storage, "--num-cpus", "2", env=env, timeout=90))
    assert expected in line, line


def test_bad_or_missing_credentials_fail_with_one_line(s3, tmp_path):
    """With moto's authentication switched on, only keys it issued are accepted (ours are not). Runs last: the
    server accepts any request again afterwards."""
    _, env, port = s3
    auth = f"http://127.0.0.1:{port}/moto-api/reset-auth"

    def set_auth_free_requests(count: str) -> None:
        request = urllib.request.Request(auth, data=count.encode(), headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).close()

    set_auth_free_requests("0")
    try:
        bad = sparsity_cli("run", TINY, "--storage", STORAGE, env=env, timeout=60)
        line = _one_line_error(bad)
        assert "access denied" in line and "check that the credentials" in line, line
        missing = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        missing.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
        line = _one_line_error(sparsity_cli("status", "tiny", "--storage", STORAGE, env=missing, timeout=60))
        assert "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in line, line
    finally:
        set_auth_free_requests("inf")
