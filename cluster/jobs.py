"""The only caller of Ray's job API: `sparsity submit`, `status` and `logs`.

A sweep is submitted as a Ray job whose working dir is a staged copy of the project's packages plus the spec (no
.git, no virtualenv, no data, no results: Ray caps a working dir at about 100 MiB and `.git` is the usual culprit,
ray#45602). The entrypoint is `sparsity run` on the cluster, which is idempotent: a sweep folder that exists with
the same plan is restored, so submitting again after a crash or a preemption resumes the sweep (Ray never retries
a job itself). Each submission gets the id `sparsity-<sweep>-<n>`; a sweep that already has a running or pending
job is not submitted twice.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import time

from cluster.local import ClusterError  # also switches on token auth before ray is imported

PACKAGES = ("sweep", "trainables", "methods", "cluster", "analysis")
WORKING_DIR_LIMIT = 100 * 1024**2  # Ray's cap on an uploaded working dir
ACTIVE = ("PENDING", "RUNNING")


def project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as e:  # connection refused, bad URL, auth: the client raises assorted types
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ClusterError(f"cannot reach the Ray job server at {address}: {reason}") from None


def stage(spec_path: str, folder: str) -> list[tuple[int, str]]:
    """Copy the project's packages (no caches) and the spec into `folder`; (size, path) of every file."""
    root = project_root()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")
    for package in PACKAGES:
        shutil.copytree(os.path.join(root, package), os.path.join(folder, package), ignore=ignore)
    if os.path.exists(os.path.join(root, "pyproject.toml")):
        shutil.copy(os.path.join(root, "pyproject.toml"), folder)
    shutil.copy(spec_path, os.path.join(folder, "spec.yaml"))
    files = []
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            files.append((os.path.getsize(path), os.path.relpath(path, folder)))
    return files


def check_size(files: list[tuple[int, str]], limit: int = WORKING_DIR_LIMIT) -> None:
    total = sum(size for size, _ in files)
    if total > limit:
        biggest = ", ".join(f"{path} ({size / 1024**2:.1f} MiB)" for size, path in sorted(files, reverse=True)[:3])
        raise ClusterError(
            f"the job's working dir would be {total / 1024**2:.1f} MiB, over Ray's {limit / 1024**2:.0f} MiB limit; "
            f"biggest files: {biggest}"
        )


def dependencies() -> list[str]:
    """The project's requirements from pyproject.toml (for runtime_env pip, with --install-deps)."""
    import tomllib

    with open(os.path.join(project_root(), "pyproject.toml"), "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def sweep_jobs(client, sweep: str) -> list:
    """This sweep's jobs, oldest first."""
    jobs = [j for j in client.list_jobs() if (j.metadata or {}).get("sparsity_sweep") == sweep]
    return sorted(jobs, key=lambda j: j.start_time or 0)


def submit(
    spec_path: str,
    sweep: str,
    address: str,
    storage: str,
    install_deps: bool = False,
    entrypoint_num_cpus: float = 1,
    env_vars: dict[str, str] | None = None,
) -> tuple[str, bool]:
    """Submit the sweep; (submission id, True) or, if one is already active, (its id, False)."""
    client = _client(address)
    jobs = sweep_jobs(client, sweep)
    active = [j for j in jobs if str(j.status) in ACTIVE]
    if active:
        return active[-1].submission_id, False
    submission_id = f"sparsity-{sweep}-{len(jobs) + 1}"
    with tempfile.TemporaryDirectory(prefix="sparsity-job-") as folder:
        check_size(stage(spec_path, folder))
        runtime_env = {"working_dir": folder, "env_vars": {"PYTHONUNBUFFERED": "1", **(env_vars or {})}}
        if install_deps:
            runtime_env["pip"] = dependencies()
        # quoted: a storage URI's query string (?a=1&b=2) would otherwise be split by the job's shell
        entrypoint = f"python -m sweep.cli run spec.yaml --address auto --storage {shlex.quote(storage)}"
        deadline = time.monotonic() + AGENT_WAIT_S
        while True:
            try:
                client.submit_job(
                    entrypoint=entrypoint,
                    submission_id=submission_id,
                    runtime_env=runtime_env,
                    metadata={"sparsity_sweep": sweep, "storage": storage},
                    entrypoint_num_cpus=entrypoint_num_cpus,
                )
                break
            except Exception as e:
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                if NO_AGENT in reason and time.monotonic() < deadline:
                    time.sleep(2)  # a cluster just started: its nodes' job agents register within seconds
                    continue
                raise ClusterError(f"submitting sweep {sweep!r} to {address} failed: {reason}") from None
    return submission_id, True


# Ray's job server answers this while no node's job agent has registered yet (a head started moments ago, or
# under load); the submission is retried for up to AGENT_WAIT_S seconds.
NO_AGENT = "No available agent to submit job"
AGENT_WAIT_S = 60


def status(address: str, sweep: str) -> list[tuple[str, str, str]]:
    """(submission id, status, start time) of each of the sweep's jobs."""
    rows = []
    for job in sweep_jobs(_client(address), sweep):
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.start_time / 1000)) if job.start_time else "-"
        rows.append((job.submission_id, str(job.status), started))
    return rows


def logs(address: str, sweep: str, submission_id: str | None = None) -> tuple[str, str]:
    """(submission id, its logs) of the sweep's latest job, or of `submission_id`."""
    client = _client(address)
    jobs = sweep_jobs(client, sweep)
    if submission_id is None:
        if not jobs:
            raise ClusterError(f"sweep {sweep!r} has no job at {address}")
        submission_id = jobs[-1].submission_id
    return submission_id, client.get_job_logs(submission_id)


def wait(address: str, submission_id: str, timeout: float) -> str:
    """Block until the job ends (or `timeout` seconds pass); its final status."""
    client = _client(address)
    deadline = time.monotonic() + timeout
    while True:
        state = client.get_job_status(submission_id)
        if state.is_terminal() or time.monotonic() > deadline:
            return str(state)
        time.sleep(2)
