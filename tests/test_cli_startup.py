"""The CLI answers at once: help, spec errors, plan, status, methods and tasks import none of the heavy parts.

Import sets, not timings: torch alone takes about 2 s to import, Ray, pandas, matplotlib and seaborn more; a
command that imports none of them answers in a fraction of a second. Each command runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("torch", "ray", "pandas", "matplotlib", "seaborn")

PROBE = """
import json, sys
from sweep.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:  # argparse's --help
    code = e.code
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def heavy_imports(*args: str) -> tuple[int, list[str]]:
    """(exit code, heavy top-level packages imported) of `sparsity ARGS` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert last.startswith("{"), done.stderr[-2000:]
    result = json.loads(last)
    return result["code"], [m for m in HEAVY if m in result["modules"]]


@pytest.fixture
def bad_spec(tmp_path) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ntask: cubist_spiral\nmethods: {magnitude: {begin_stp: 1}}\nsparsity: [0.5]\n")
    return str(path)


@pytest.fixture
def sweep_folder(tmp_path) -> str:
    """A sweep with a manifest and one finished trial's rows, as `sparsity status` reads them."""
    folder = tmp_path / "demo"
    for table in ("trials", "evals"):
        (folder / "results" / table).mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({"trial_ids": ["a", "b"]}))
    pq.write_table(pa.table({"trial_id": ["a"], "status": ["completed"]}), folder / "results/trials/a.parquet")
    pq.write_table(pa.table({"trial_id": ["a"]}), folder / "results/evals/a.parquet")
    return str(folder)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["plan", "tests/specs/tiny.yaml"],
        ["plan", "sweep/specs/lottery_cubist.yaml"],
        ["methods"],
        ["tasks"],
    ],
    ids=" ".join,
)
def test_commands_import_nothing_heavy(args):
    code, heavy = heavy_imports(*args)
    assert code == 0 and heavy == []


def test_a_spec_error_imports_nothing_heavy(bad_spec):
    assert heavy_imports("plan", bad_spec) == (2, [])


def test_status_imports_no_training_code(sweep_folder):
    code, heavy = heavy_imports("status", sweep_folder)
    # pandas: analysis/load.py lists a table's files with pyarrow.dataset, whose import (pyarrow 26) imports pandas
    assert code == 0 and [m for m in heavy if m != "pandas"] == []
