"""Every file and folder name of a sweep, in one place. Paths are strings so that URIs (s3://...) work too.

<storage>/<sweep>/
    spec.yaml           the spec as given
    sweep.json          manifest: spec hash, trial ids, versions
    results/{evals,trials,layers}/<trial_id>.parquet
    report/             what `sparsity report` writes
    tune/               Ray Tune's experiment state and trial checkpoints
"""

from __future__ import annotations

import os

TABLES = ("evals", "trials", "layers")


def _join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/"), *parts[1:]])


def sweep_dir(storage: str, name: str) -> str:
    if "://" not in storage:
        storage = os.path.abspath(os.path.expanduser(storage))
    return _join(storage, name)


def spec_file(sweep: str) -> str:
    return _join(sweep, "spec.yaml")


def manifest_file(sweep: str) -> str:
    return _join(sweep, "sweep.json")


def results_dir(sweep: str) -> str:
    return _join(sweep, "results")


def table_dir(sweep: str, table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"unknown results table {table!r}; tables: {', '.join(TABLES)}")
    return _join(results_dir(sweep), table)


def result_file(sweep: str, table: str, trial_id: str) -> str:
    return _join(table_dir(sweep, table), f"{trial_id}.parquet")


def report_dir(sweep: str) -> str:
    return _join(sweep, "report")


def tune_dir(sweep: str) -> str:
    return _join(sweep, "tune")


def train_dir(sweep: str) -> str:
    """Ray Train runs of multi-worker trials (their checkpoints), one folder per trial id."""
    return _join(sweep, "train")
