"""Reading a sweep's results tables (DESIGN.md §Results).

A large sweep has hundreds to thousands of files per table (one per trial, or one per pack of trials), so the
cost of a read is mostly per file and per column: each file is opened once (its footer read once) on a thread
pool, and only the columns asked for are decoded. Folders merged from several sweeps may hold files of different
schemas; they are unified as pyarrow's permissive promotion does (a column a file lacks reads as null).

status_counts() is what `sparsity status` shows (trials by status, those in progress), from two columns.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trainables.records import integrity, paths, storage  # file layout, pyarrow filesystems: no training code
from trainables.records.integrity import DamagedFile


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Decoding is CPU-bound locally (a thread per core the process may use); an object store is latency-bound.
LOCAL_THREADS = min(16, max(2, _cores()))
REMOTE_THREADS = 16


def read_table(
    sweep_dir: str,
    table: str,
    columns: Iterable[str] | None = None,
    where: dict[str, Iterable] | None = None,
    *,
    units: Iterable[str] | None = None,
) -> pd.DataFrame:
    """One results table of a sweep as a DataFrame (empty, with no columns, if nothing was written yet).

    `columns`: read only these (in this order; those no file has are left out). `where`: {column: values}, keep
    only the rows whose value of that column is one of `values` (applied file by file, before anything is
    converted, so a selective read stays small). `units`: read only the files of these units (a unit is a trial
    or a pack of trials; its id names its file in every table), those that exist."""
    return to_frame(read_arrow(sweep_dir, table, columns, where, units=units))


def to_frame(arrow: pa.Table) -> pd.DataFrame:
    """A DataFrame of `arrow`, each column in one piece: pandas' Arrow-backed strings are slow over the thousands
    of small chunks that one read of many files gives."""
    return arrow.combine_chunks().to_pandas() if arrow.num_columns else pd.DataFrame()


def read_arrow(
    sweep_dir: str,
    table: str,
    columns: Iterable[str] | None = None,
    where: dict[str, Iterable] | None = None,
    *,
    units: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    unit_column: str | None = None,
    damaged: list[tuple[str, str]] | None = None,
) -> pa.Table:
    """As read_table, as a pyarrow Table of one chunk per file (no columns if nothing was written). `exclude`:
    columns not to read (with `columns` None: all others); `unit_column` names an added (dictionary) column
    holding each row's unit id. A file that cannot be read as Parquet (cut short, garbled) raises DamagedFile
    naming it; with a `damaged` list, it is left out and (its location, why) appended instead."""
    location = paths.table_dir(sweep_dir, table)
    fs, folder = storage.resolve(location)
    if not paths.is_uri(sweep_dir) and not os.path.isdir(folder):
        return _NOTHING
    columns = None if columns is None else list(columns)
    unreadable: list[tuple[str, str]] = []
    try:
        files = _files(fs, folder) if units is None else _unit_files(fs, folder, units)
        parts = _read_files(fs, files, columns, set(exclude), where, paths.is_uri(sweep_dir), unreadable)
    except FileNotFoundError:  # no object under that prefix yet
        return _NOTHING
    except storage.FAILURES as e:  # e.g. an object store refusing the credentials: one line, not a traceback
        raise storage.StorageError(f"{paths.redact(location)}: {storage.reason(e, location)}") from None
    unreadable = [(paths.join(location, posixpath.relpath(path, folder)), why) for path, why in sorted(unreadable)]
    if unreadable and damaged is None:
        (where_, why), more = unreadable[0], len(unreadable) - 1
        others = f" (and {more} other files of {table})" if more else ""
        raise DamagedFile(
            f"{paths.redact(where_)}: damaged results file ({why}){others}; "
            f"`sparsity resume {paths.redact(sweep_dir)}` moves it aside and runs its trials again"
        )
    if damaged is not None:
        damaged += unreadable
    if not parts:
        return _NOTHING
    out = _concat([b.table for b in parts])
    if columns is not None:
        out = out.select([c for c in columns if c in out.column_names])
    if unit_column is None:
        return out
    files = [f for b in parts for f in b.files]
    ids = pa.array([posixpath.relpath(path, folder).removesuffix(".parquet") for path, _ in files])
    index = np.repeat(np.arange(len(files), dtype=np.int32), [rows for _, rows in files])
    return out.append_column(unit_column, pa.chunked_array([pa.DictionaryArray.from_arrays(index, ids)]))


def _concat(tables: list[pa.Table]) -> pa.Table:
    same = all(t.schema.equals(tables[0].schema) for t in tables)  # the usual case; promoting costs 4x as much
    return pa.concat_tables(tables, promote_options="none" if same else "permissive")


_NOTHING = pa.table({})


def _files(fs, folder: str) -> list[str]:
    """The files pyarrow.dataset's discovery would scan, in its (sorted) order, temporary files skipped (names
    starting with "." or "_"); listed here because discovery itself opens a file, and fails on a damaged one."""
    found = fs.get_file_info(pafs.FileSelector(folder, recursive=True))
    return sorted(
        i.path
        for i in found
        if i.is_file and not any(part[:1] in "._" for part in posixpath.relpath(i.path, folder).split("/"))
    )


def _unit_files(fs, folder: str, units: Iterable[str]) -> list[str]:
    wanted = [f"{folder}/{u}.parquet" for u in sorted(set(units))]  # sorted: the order discovery gives
    return [i.path for i in fs.get_file_info(wanted) if i.type == pafs.FileType.File] if wanted else []


class _Batch(NamedTuple):
    table: pa.Table  # the rows of its files, in one chunk
    files: list[tuple[str, int]]  # (path, rows) of each file it read


def _read_files(fs, files: list[str], columns, exclude: set[str], where, remote: bool, unreadable) -> list[_Batch]:
    """The files read on a thread pool, in batches of consecutive files each joined into one table: fewer tasks,
    and no tens of thousands of small tables held at once (50,000 one-row files took GBs that way)."""
    keep = {k: pa.array(list(v)) for k, v in (where or {}).items()}
    threads = REMOTE_THREADS if remote else LOCAL_THREADS
    size = max(1, min(64, len(files) // (4 * threads)))
    batches = [files[i : i + size] for i in range(0, len(files), size)]
    read = partial(_read_batch, fs, columns, exclude, keep, remote, unreadable)
    with ThreadPoolExecutor(threads) as pool:
        return [b for b in pool.map(read, batches) if b is not None]


def _read_batch(
    fs, columns, exclude: set[str], keep: dict[str, pa.Array], remote: bool, unreadable: list, batch: list[str]
) -> _Batch | None:
    found = [(path, _read_file(fs, columns, exclude, keep, remote, unreadable, path)) for path in batch]
    found = [(path, t) for path, t in found if t is not None]
    if not found:
        return None
    return _Batch(_concat([t for _, t in found]).combine_chunks(), [(path, t.num_rows) for path, t in found])


def _read_file(
    fs, columns, exclude: set[str], keep: dict[str, pa.Array], remote: bool, unreadable: list, path: str
) -> pa.Table | None:
    """The asked-for columns of one file (those it has), rows filtered by `keep`; None if no row can match, the
    file went away meanwhile (a unit's stale rows dropped by a resumed sweep) or cannot be read as Parquet (then
    (path, why) is appended to `unreadable`)."""
    try:
        f = fs.open_input_file(path)
    except FileNotFoundError:
        return None
    try:
        with f:
            parquet = pq.ParquetFile(f, pre_buffer=remote)  # pre-buffering pays for a remote store's latency only
            names = parquet.schema_arrow.names
            if any(k not in names for k in keep):
                return None
            wanted = [c for c in (names if columns is None else columns) if c in names and c not in exclude]
            needed = wanted + [k for k in keep if k not in wanted]
            part = parquet.read(columns=needed, use_threads=False)  # the pool parallelises over files
    except (pa.ArrowException, OSError) as e:  # cut short or garbled (an unreachable store fails at listing)
        unreadable.append((path, integrity.reason(e)))
        return None
    if not keep:
        return part
    mask = None
    for name, values in keep.items():
        match = pc.is_in(part[name], value_set=values.cast(part.schema.field(name).type))
        mask = match if mask is None else pc.and_(mask, match)
    return part.filter(mask).select(wanted)


class StatusCounts(NamedTuple):
    """What `sparsity status` shows, from the trial_id and status columns only."""

    counts: dict[str, int]  # finished trials by status (completed, diverged, failed, stopped), one per trial
    finished: set[str]  # trial ids with a `trials` row (whatever its status)
    evaluated: set[str]  # trial ids with at least one `evals` row

    @property
    def running(self) -> set[str]:
        """Trials that evaluated but have not finished: in progress (or interrupted)."""
        return self.evaluated - self.finished


def status_counts(sweep_dir: str) -> StatusCounts:
    """Trials counted by status (each trial once, by its first row, as the report's summary counts them), the ids
    of finished trials and of evaluated ones; reads only `trials.trial_id`, `trials.status` and `evals.trial_id`,
    so it stays cheap on a sweep of any size. Empty for a sweep that wrote nothing yet."""
    trials = read_arrow(sweep_dir, "trials", ["trial_id", "status"])
    evals = read_arrow(sweep_dir, "evals", ["trial_id"])
    counts: dict[str, int] = {}
    finished: set[str] = set()
    if trials.num_rows and {"trial_id", "status"} <= set(trials.column_names):
        first = trials.group_by("trial_id", use_threads=False).aggregate([("status", "first")])  # ordered: first row
        finished = set(first["trial_id"].to_pylist())
        tally = first["status_first"].value_counts()
        pairs = zip(tally.field("values").to_pylist(), tally.field("counts").to_pylist())
        counts = {s: n for s, n in pairs if s is not None}  # as pandas' value_counts, which drops nulls
    evaluated = set(pc.unique(evals["trial_id"]).to_pylist()) if "trial_id" in evals.column_names else set()
    return StatusCounts(counts, finished, evaluated)
