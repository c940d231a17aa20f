"""Every file and folder name of a sweep, in one place. Paths are strings so that URIs (s3://...) work too.

A URI may carry pyarrow filesystem options as a query string (s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http):
it stays at the end of every path built from it, so each one opens the same filesystem.

<storage>/<sweep>/
    spec.yaml           the spec as given
    sweep.json          manifest: spec hash, trial ids, versions
    results/{evals,trials,layers}/<unit>.parquet   a unit is a trial, or a pack of trials run together
    damaged/{evals,trials,layers}/<unit>.parquet   result files a re-run found unreadable, set aside (and the
                        trials file of their unit, so that it runs again)
    results-checked.json   the result files a re-run found readable (size, time), so the next checks only new ones
    packs/<pack_id>.json    the members of each pack; packs/layout-<stage>.json: the units a stage launched
    report/             what `sparsity report` writes
    tune/               Ray Tune's experiment state and trial checkpoints (first stage)
    tune-<stage>/       the same, for each dependent stage
    artifacts/<trial_id>/  step-0 weights, rewind weights, final masks (for dependent stages)
"""

from __future__ import annotations

import os

TABLES = ("evals", "trials", "layers")


def is_uri(path: str) -> bool:
    return "://" in path


def split_query(path: str) -> tuple[str, str]:
    """(path without its query string, "?query" or ""): names are joined before the query, never after it."""
    if not is_uri(path) or "?" not in path:
        return path, ""
    base, query = path.split("?", 1)
    return base, "?" + query


SECRET_OPTIONS = ("secret_key", "session_token")


def redact(path: str) -> str:
    """The path for printing: secrets a URI's query string may carry (pyarrow's secret_key=...) hidden."""
    base, query = split_query(path)
    if not query:
        return path
    options = [o.split("=", 1)[0] + "=***" if o.split("=", 1)[0] in SECRET_OPTIONS else o for o in query[1:].split("&")]
    return f"{base}?{'&'.join(options)}"


def join(base: str, *names: str) -> str:
    path, query = split_query(base)
    return "/".join([path.rstrip("/"), *names]) + query


def name(path: str) -> str:
    """The last name of a path or URI (a sweep folder's name is its sweep's name)."""
    return split_query(path)[0].rstrip("/").rsplit("/", 1)[-1]


def parent(path: str) -> str:
    """The folder holding a path or URI (a sweep's storage root), query string kept."""
    base, query = split_query(path)
    if not is_uri(base):
        return os.path.dirname(os.path.abspath(base))
    return base.rstrip("/").rsplit("/", 1)[0] + query


def sweep_dir(storage: str, name: str) -> str:
    if not is_uri(storage):
        storage = os.path.abspath(os.path.expanduser(storage))
    return join(storage, name)


def spec_file(sweep: str) -> str:
    return join(sweep, "spec.yaml")


def manifest_file(sweep: str) -> str:
    return join(sweep, "sweep.json")


def results_dir(sweep: str) -> str:
    return join(sweep, "results")


def table_dir(sweep: str, table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"unknown results table {table!r}; tables: {', '.join(TABLES)}")
    return join(results_dir(sweep), table)


def result_file(sweep: str, table: str, trial_id: str) -> str:
    return join(table_dir(sweep, table), f"{trial_id}.parquet")


def damaged_file(sweep: str, table: str, unit: str) -> str:
    """Where a re-run sets a unit's unreadable result file aside (outside results/: readers never see it)."""
    if table not in TABLES:
        raise ValueError(f"unknown results table {table!r}; tables: {', '.join(TABLES)}")
    return join(sweep, "damaged", table, f"{unit}.parquet")


def checked_file(sweep: str) -> str:
    """What a re-run found readable among the result files (trainables/records/integrity.py)."""
    return join(sweep, "results-checked.json")


def report_dir(sweep: str) -> str:
    return join(sweep, "report")


def tune_dir(sweep: str, stage: str = "main") -> str:
    """Ray Tune's experiment folder of one stage of the sweep."""
    return join(sweep, "tune" if stage == "main" else f"tune-{stage}")


def train_dir(sweep: str) -> str:
    """Ray Train runs of multi-worker trials (their checkpoints), one folder per trial id."""
    return join(sweep, "train")


def artifacts_dir(sweep: str) -> str:
    """What trials keep for later stages (trainables/records/artifacts.py), one folder per trial id."""
    return join(sweep, "artifacts")


def packs_dir(sweep: str) -> str:
    """Packed trials (trainables/packing/): one JSON file per pack, and each stage's launched layout."""
    return join(sweep, "packs")


def pack_file(sweep: str, pack_id: str) -> str:
    return join(packs_dir(sweep), f"{pack_id}.json")


def layout_file(sweep: str, stage: str) -> str:
    return join(packs_dir(sweep), f"layout-{stage}.json")
