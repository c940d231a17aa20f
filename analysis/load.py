"""Reading a sweep's results tables (DESIGN.md §Results)."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from trainables.records import paths, storage  # file layout and pyarrow filesystems only, no training code


def read_table(sweep_dir: str, table: str) -> pd.DataFrame:
    """One results table of a sweep as a DataFrame (empty, with no columns, if nothing was written yet)."""
    where = paths.table_dir(sweep_dir, table)
    fs, folder = storage.resolve(where)
    if not paths.is_uri(sweep_dir) and not os.path.isdir(folder):
        return pd.DataFrame()
    try:
        return _read(fs, folder)
    except FileNotFoundError:  # no object under that prefix yet
        return pd.DataFrame()
    except storage.FAILURES as e:  # e.g. an object store refusing the credentials: one line, not a traceback
        raise storage.StorageError(f"{paths.redact(where)}: {storage.reason(e, where)}") from None


def _read(fs, folder: str) -> pd.DataFrame:
    dataset = ds.dataset(folder, format="parquet", filesystem=fs)
    fragments = list(dataset.get_fragments())
    if not fragments:
        return pd.DataFrame()
    # files of one sweep share a schema; unify anyway so folders merged from several sweeps read whole
    schema = pa.unify_schemas([f.physical_schema for f in fragments], promote_options="permissive")
    return ds.dataset(folder, format="parquet", schema=schema, filesystem=fs).to_table().to_pandas()
