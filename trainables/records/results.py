"""Writing the public results tables (DESIGN.md §Results): one Parquet file per trial and table.

A trial rewrites its whole file each time (temporary name, then rename), so a restarted or re-run trial
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
    },
}
HP_TABLES = ("evals", "trials")  # tables that carry one column per hyper-parameter


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
    sch = schema(table, trial.hp_columns)
    hps = {
        k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for k, v in trial.hyperparameters.items()
    }
    base = {**key_fields(trial), **(hps if table in HP_TABLES else {})}
    full = [{**base, **row} for row in rows]
    arrow = pa.Table.from_pylist(full, schema=sch)
    fs, path = storage.resolve(paths.result_file(trial.sweep_dir, table, trial.trial_id))
    folder, name = path.rsplit("/", 1)
    fs.create_dir(folder, recursive=True)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"  # dot-prefixed: pyarrow.dataset skips it
    pq.write_table(arrow, tmp, filesystem=fs)
    fs.move(tmp, path)
    return path


def read_rows(trial: Trial, table: str) -> list[dict[str, Any]]:
    """This trial's rows of `table` as written by `write_rows` (empty if it wrote none)."""
    fs, path = storage.resolve(paths.result_file(trial.sweep_dir, table, trial.trial_id))
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    return pq.read_table(path, filesystem=fs).to_pylist()
