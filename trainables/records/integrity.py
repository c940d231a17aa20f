"""Whether a sweep's result files can be read, before a re-run trusts them (DESIGN.md §Results).

A unit's `trials` rows are the record that its trials finished: a re-run leaves finished trials out, and the
report and `sparsity status` read the same files. A file cut short (a full disk, a copy interrupted) or garbled
would otherwise be trusted as it is, so a re-run checks every file first: its footer (the Parquet metadata: a
truncated file has none) and its key columns, trial_id and, in `trials`, status (what deciding "finished" and
`sparsity status` read anyway). One small read per file on a thread pool, nothing read in full: about 1.4 ms
per trial (its three files) on one core, measured on 10,000 one-trial units.

A damaged file is never deleted: set_aside() moves it to <sweep>/damaged/<table>/, outside results/, together
with its unit's `trials` file when that one is intact (its rows would still say "finished"), so the unit's
trials run again, from their last checkpoint where one exists, and write their files whole.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import NamedTuple

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trainables.records import paths, storage
from trainables.records.results import FINAL


class DamagedFile(storage.StorageError):
    """A results file that cannot be read as Parquet; str(error) is one line naming it."""


class Damaged(NamedTuple):
    table: str
    unit: str  # the unit id (a trial's or a pack's) that names the file
    location: str  # the file, as a path or URI (for messages)
    reason: str  # one line


class Scan(NamedTuple):
    finished: dict[str, set[str]]  # unit id -> ids of the trials its readable `trials` rows say finished
    damaged: list[Damaged]

    def finished_ids(self) -> set[str]:
        return set().union(*self.finished.values()) if self.finished else set()


def reason(error: BaseException) -> str:
    """pyarrow's (or the filesystem's) complaint about a file, on one short line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _threads(remote: bool) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 16 if remote else min(16, max(2, cores))


def parquet_files(fs: pafs.FileSystem, folder: str) -> list[pafs.FileInfo]:
    """The result files of a table folder, as pyarrow.dataset discovers them (temporary dot-files skipped)."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    except FileNotFoundError:
        return []
    return [i for i in infos if i.is_file and i.base_name.endswith(".parquet") and not i.base_name.startswith(".")]


def _check(fs: pafs.FileSystem, table: str, info: pafs.FileInfo) -> tuple[set[str] | None, str | None]:
    """(ids finished per its rows (trials only), or the reason the file cannot be read)."""
    try:
        with fs.open_input_file(info.path) as f:
            parquet = pq.ParquetFile(f)  # reads and parses the footer
            names = parquet.schema_arrow.names
            if "trial_id" not in names or (table == "trials" and "status" not in names):
                return None, "not a results file (no trial_id or status column)"
            keys = ["trial_id", "status"] if table == "trials" else ["trial_id"]
            rows = parquet.read(columns=keys, use_threads=False).to_pydict()  # the columns status counts read
            if table != "trials":
                return set(), None
    except FileNotFoundError:
        return set(), None  # removed meanwhile (stale rows dropped by another run): nothing to trust or blame
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for the many ways a file can be wrong
        return None, reason(e)
    return {tid for tid, status in zip(rows["trial_id"], rows["status"]) if status in FINAL}, None


def scan(sweep_dir: str, tables: tuple[str, ...] = paths.TABLES, remember: bool = False) -> Scan:
    """Check the result files of `tables` (see the module's docstring); an unreachable store raises StorageError.

    `remember`: keep what was found in the sweep's checked-files record (paths.checked_file: each readable file's
    size and modification time, and for `trials` the ids it says finished), and check again only the files that
    changed since, or are new: a re-run of a large sweep then lists its folders and reads what changed."""
    known = _load_record(sweep_dir) if remember else {}
    record: dict[str, dict[str, list]] = {t: v for t, v in known.items() if t not in tables}
    finished: dict[str, set[str]] = {}
    damaged: list[Damaged] = []
    for table in tables:
        location = paths.table_dir(sweep_dir, table)
        fs, folder = storage.resolve(location)
        try:
            files = parquet_files(fs, folder)
        except storage.FAILURES as e:
            raise storage.StorageError(f"{paths.redact(location)}: {storage.reason(e, location)}") from None
        seen, kept = known.get(table, {}), record.setdefault(table, {})
        units = {info.base_name[: -len(".parquet")]: info for info in files}
        fresh = [info for unit, info in units.items() if seen.get(unit, [None, None])[:2] != _stamp(info)]
        with ThreadPoolExecutor(_threads(paths.is_uri(sweep_dir))) as pool:
            checked = dict(zip((i.base_name for i in fresh), pool.map(partial(_check, fs, table), fresh)))
        for unit, info in units.items():
            done, why = checked.get(info.base_name, (None, None))
            if why is not None:
                damaged.append(Damaged(table, unit, paths.join(location, info.base_name), why))
                continue
            if info.base_name in checked:
                kept[unit] = [*_stamp(info), sorted(done)]
            else:
                kept[unit] = seen[unit]
            if table == "trials":
                finished[unit] = set(kept[unit][2])
    if remember and record != known:
        storage.write_text(paths.checked_file(sweep_dir), json.dumps(record, separators=(",", ":")))
    return Scan(finished, damaged)


def _stamp(info: pafs.FileInfo) -> list:
    return [info.size, info.mtime_ns]


def _load_record(sweep_dir: str) -> dict:
    where = paths.checked_file(sweep_dir)
    try:
        return json.loads(storage.read_text(where)) if storage.exists(where) else {}
    except (ValueError, storage.StorageError):  # unreadable itself: check everything again
        return {}


def set_aside(sweep_dir: str, found: Scan) -> tuple[Scan, list[str]]:
    """Move each damaged file, and the intact `trials` file of its unit, under <sweep>/damaged/; the scan without
    those units' finished trials, and one line per damaged file saying what was done."""
    lines = []
    finished = dict(found.finished)
    bad = {(d.table, d.unit) for d in found.damaged}
    for d in found.damaged:
        moved = _move(sweep_dir, d.table, d.unit)
        extra = ""
        if d.table != "trials" and ("trials", d.unit) not in bad and d.unit in finished:
            extra = f", and its intact trials file to {paths.redact(_move(sweep_dir, 'trials', d.unit))}"
            bad.add(("trials", d.unit))
        finished.pop(d.unit, None)
        lines.append(
            f"{paths.redact(d.location)} is damaged ({d.reason}): moved to {paths.redact(moved)}{extra}; "
            "its trials run again"
        )
    return Scan(finished, []), lines


def _move(sweep_dir: str, table: str, unit: str) -> str:
    """Move a unit's file of `table` under damaged/, never over an earlier one there; where it went."""
    source = paths.result_file(sweep_dir, table, unit)
    fs, src = storage.resolve(source)
    try:
        for n in range(1_000_000):
            target = paths.damaged_file(sweep_dir, table, unit if n == 0 else f"{unit}.{n}")
            dst = storage.resolve(target)[1]
            if fs.get_file_info(dst).type == pafs.FileType.NotFound:
                break
        fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
        fs.move(src, dst)
    except storage.FAILURES as e:
        raise storage.StorageError(
            f"{paths.redact(source)}: cannot move it aside: {storage.reason(e, source)}"
        ) from None
    return target
