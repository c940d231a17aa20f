"""Shared fixtures. Tests use real components: real Ray, real Parquet files, real processes and signals."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(__file__)
SPECS = os.path.join(HERE, "specs")


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


def sparsity_cli(*args: str, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    """Run the installed `sparsity` command as a user would."""
    exe = shutil.which("sparsity", path=os.path.dirname(sys.executable)) or "sparsity"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, **kw)
