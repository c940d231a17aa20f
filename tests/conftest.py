"""Shared fixtures. Tests use real components: real Ray, real Parquet files, real processes and signals."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(__file__)
SPECS = os.path.join(HERE, "specs")


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny tensors: one intra-op thread is fastest, and avoids spinning threads on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec (a dict, or the named bundled test spec with overrides) to a YAML file; return its path."""

    def write(data: dict | str, name: str = "spec.yaml", **overrides) -> str:
        if isinstance(data, str):
            with open(os.path.join(SPECS, data)) as f:
                data = yaml.safe_load(f)
        data = {**data, **overrides}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return str(path)

    return write


def free_port() -> int:
    """A TCP port nothing listens on right now (for servers a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sparsity_cli(*args: str, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    """Run the installed `sparsity` command as a user would."""
    exe = shutil.which("sparsity", path=os.path.dirname(sys.executable)) or "sparsity"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, **kw)


def stop_ray_under(temp_dir: str) -> None:
    """Kill the Ray processes started with `--temp-dir temp_dir` (and their children, the workers), leaving every
    other Ray on the machine alone: `ray stop --force` would end a sweep running beside the tests too."""
    import psutil

    mine = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(temp_dir in part for part in proc.info["cmdline"] or ()):
            try:
                mine += [proc, *proc.children(recursive=True)]
            except psutil.Error:
                pass
    for proc in mine:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(mine, timeout=30)
