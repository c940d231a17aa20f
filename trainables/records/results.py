"""Writing the public results tables (DESIGN.md §Results): one Parquet file per unit and table, where a unit
is a trial or a pack of trials trained together (trainables/packing/).

A unit rewrites its whole file each time (temporary name, then rename), so a restarted or re-run unit
replaces its own rows and never duplicates them; readers never see a half-written file.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trainables.records import paths, storage
from trainables.trial import Trial

ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}

_KEYS = {
    "sweep": pa.string(),
    "trial_id": pa.string(),
    "parent_trial_id": pa.string(),
    "stage": pa.string(),
    "task": pa.string(),
    "method": pa.string(),
    "seed": pa.int64(),
    "config_hash": pa.string(),
    "target_sparsity": pa.float64(),
    "target_nnz": pa.int64(),  # the spec's `nnz`: the number of weights to keep (null for a `sparsity` target)
}
# measured on the masks (trainables/training/structure.py); the counts beyond nnz_weights only for a chain of
# linear layers (an MLP), null for other models
_NNZ = {"nnz_weights": pa.int64(), "nnz_model": pa.int64()}
_CONNECTIVITY = {
    "in_degree_zero": pa.int64(),
    "out_degree_zero": pa.int64(),
    "effective_weights": pa.int64(),
    "ineffective_weights": pa.int64(),
}
COLUMNS = {
    "evals": {
        **_KEYS,
        "step": pa.int64(),
        "metric": pa.string(),
        "primary": pa.bool_(),
        "metric_detail": pa.string(),
        "value": pa.float64(),
        "sparsity": pa.float64(),
        **_NNZ,
        "loss": pa.float64(),
        "current_lr": pa.float64(),
        "wall_time_s": pa.float64(),
    },
    "trials": {
        **_KEYS,
        "source": pa.string(),
        "status": pa.string(),
        "metric": pa.string(),
        "primary": pa.bool_(),
        "metric_detail": pa.string(),
        "mode": pa.string(),
        "value": pa.float64(),
        "sparsity": pa.float64(),
        **_NNZ,
        **_CONNECTIVITY,
        "paths": pa.int64(),
        "steps": pa.int64(),
        "wall_time_s": pa.float64(),
    },
    "layers": {
        **_KEYS,
        "layer": pa.string(),
        "shape": pa.string(),
        "numel": pa.int64(),
        "nonzero": pa.int64(),
        "sparsity": pa.float64(),
        **_NNZ,
        **_CONNECTIVITY,
        "mask": pa.string(),  # a small layer's nonzero pattern (training/structure.py: mask_hex)
    },
}
HP_TABLES = ("evals", "trials")
FINAL = (
    "completed",
    "diverged",
)  # statuses whose trials rows say a trial is done: it is never trained again  # tables that carry one column per hyper-parameter


def schema(table: str, hp_columns: tuple[tuple[str, str], ...] = ()) -> pa.Schema:
    cols = dict(COLUMNS[table])
    if table in HP_TABLES:
        for name, kind in hp_columns:
            if name in cols:
                raise ValueError(f"hyper-parameter {name!r} collides with a results column")
            cols[name] = ARROW_TYPES[kind]
    return pa.schema(list(cols.items()))


def key_fields(trial: Trial) -> dict[str, Any]:
    return {k: getattr(trial, k) for k in _KEYS}


def write_rows(trial: Trial, table: str, rows: list[dict[str, Any]]) -> str:
    """Atomically replace this trial's file of `table` with `rows` (key and hyper-parameter columns added)."""
    return write_unit(trial.sweep_dir, trial.trial_id, table, [(trial, rows)])


def keyed(trial: Trial, table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` with the trial's key columns (and, in `evals` and `trials`, its hyper-parameters) added."""
    base = key_fields(trial)
    if table in HP_TABLES:
        base.update(
            {
                k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
                for k, v in trial.hyperparameters.items()
            }
        )
    return [{**base, **row} for row in rows]


def write_unit(sweep_dir: str, unit_id: str, table: str, parts: list[tuple[Trial, list[dict[str, Any]]]]) -> str:
    """Atomically replace a unit's file of `table` with the rows of each of its trials (a pack has many)."""
    sch = schema(table, parts[0][0].hp_columns)
    full = [row for trial, rows in parts for row in keyed(trial, table, rows)]
    return write_table(sweep_dir, unit_id, table, pa.Table.from_pylist(full, schema=sch))


def write_table(sweep_dir: str, unit_id: str, table: str, arrow: pa.Table) -> str:
    """Atomically replace a unit's file of `table` with `arrow` (rows already keyed)."""
    fs, path = storage.resolve(paths.result_file(sweep_dir, table, unit_id))
    folder, name = path.rsplit("/", 1)
    fs.create_dir(folder, recursive=True)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"  # dot-prefixed: pyarrow.dataset skips it
    pq.write_table(arrow, tmp, filesystem=fs)
    fs.move(tmp, path)
    return path


def read_rows(trial: Trial, table: str) -> list[dict[str, Any]]:
    """This trial's rows of `table` as written by `write_rows` (empty if it wrote none)."""
    return read_unit(trial.sweep_dir, trial.trial_id, table)


def read_unit(sweep_dir: str, unit_id: str, table: str) -> list[dict[str, Any]]:
    """The rows of a unit's file of `table` (empty if it wrote none)."""
    fs, path = storage.resolve(paths.result_file(sweep_dir, table, unit_id))
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    return pq.read_table(path, filesystem=fs).to_pylist()
