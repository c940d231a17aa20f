"""How a stage's trials run: grouped into packs (trainables/packing/), or one Tune trial each.

Packing is how trials run, never who they are: a pack's members keep their trial ids, config hashes and rows.
Trials share a pack when they can share one stacked computation: the same task shape (every task option but
the task's `pack_options`), step count and method, and the same non-numeric method options; they may differ in
seed, target sparsity, the task's pack options (learning rate, schedule, momentum, weight decay) and the
method's numbers. What cannot pack (a method, a task or options without a stacked form, multi-worker trials,
trials of a spec with dependent stages) runs one trial per Tune trial, as without `pack`, and is said once.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import typing

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

import methods
from trainables import tasks
from trainables.packing.pack import Pack, pack_id
from trainables.packing.pack import save as save_pack
from trainables.records import paths, results, storage
from trainables.trial import Trial

AUTO_CAP = 256  # members per pack under `pack: auto` (bench/packing.py: per-member cost is flat from here on)
AUTO_MIN = 16  # `auto` splits a group over the cluster's trial slots only while each pack keeps this many


@dataclasses.dataclass(frozen=True)
class Layout:
    """The units a stage runs: packs and single trials, and why some trials could not pack."""

    packs: list[Pack]
    singles: list[Trial]
    refusals: dict[str, int]  # reason -> trials it kept unpacked

    @property
    def size(self) -> int:
        return len(self.packs) + len(self.singles)

    def unit_members(self) -> dict[str, list[str]]:
        units = {p.pack_id: [m.trial_id for m in p.members] for p in self.packs}
        units.update({t.trial_id: [t.trial_id] for t in self.singles})
        return units


def unit_of(config: dict) -> dict:
    """A Tune trial's unit: {"trial": Trial dict} or {"pack": {"pack_id", "sweep_dir", "size"}} (sweeps started
    before packing carry the trial at the top level)."""
    return config.get("unit", config)


def unit_name(config: dict) -> str:
    """A Tune trial's name: its pack's id, or its trial's id."""
    unit = unit_of(config)
    return unit["pack"]["pack_id"] if "pack" in unit else unit["trial"]["trial_id"]


def unit_size(config: dict) -> int:
    """How many trials a Tune trial trains."""
    unit = unit_of(config)
    return unit["pack"]["size"] if "pack" in unit else 1


def auto_slots(cpus: float, cpus_per_trial: float) -> int:
    return max(1, int(cpus // max(cpus_per_trial, 1e-9)))


def refusal(trial: Trial, has_stages: bool) -> str | None:
    """Why `trial` cannot run in a pack, or None."""
    method = methods.declared(trial.method)
    if not method.packable:
        return f"method {trial.method} cannot run packed"
    if trial.workers > 1:
        return "multi-worker trials run unpacked"
    if has_stages:
        return "a spec with dependent stages keeps masks and weights per trial, so its trials run unpacked"
    task_cls = tasks.declared(trial.task)
    return task_cls.pack_refusal(task_cls.Options(**trial.task_options))


@functools.cache
def _numeric(config_cls: type) -> frozenset[str]:
    hints = typing.get_type_hints(config_cls)
    return frozenset(name for name, tp in hints.items() if tp in (int, float))


def group_key(trial: Trial) -> str:
    """Trials with the same key can share one stacked computation."""
    task_cls = tasks.declared(trial.task)
    numeric = _numeric(methods.declared(trial.method).Config)
    shape = {k: v for k, v in trial.task_options.items() if k not in task_cls.pack_options}
    method = {k: v for k, v in trial.method_config.items() if k not in numeric}
    return json.dumps([trial.stage, trial.task, shape, trial.method, method, trial.threads], sort_keys=True)


def pack_sizes(n: int, cap: int | str, slots: int) -> list[int]:
    """Balanced pack sizes for a group of n trials: at most `cap` each; `auto` caps at AUTO_CAP and also spreads a
    group over the trial slots while each pack keeps AUTO_MIN members."""
    limit = AUTO_CAP if cap == "auto" else int(cap)
    count = math.ceil(n / limit)
    if cap == "auto":
        count = max(count, min(slots, n // AUTO_MIN), 1)
    base, extra = divmod(n, count)
    return [base + (i < extra) for i in range(count)]


def layout(trials: list[Trial], cap: int | str, slots: int, has_stages: bool) -> Layout:
    """Group `trials` (one stage's, in plan order) into packs of at most `cap` members, or single trials."""
    if cap == 1:
        return Layout([], list(trials), {})
    groups: dict[str, list[Trial]] = {}
    singles: list[Trial] = []
    refusals: dict[str, int] = {}
    reasons: dict[str, str | None] = {}  # per group: trials of one shape and method pack alike
    keys: dict[tuple, str] = {}  # the plan shares one options dict per grid point among its trials
    for t in trials:
        shared = (id(t.task_options), id(t.method_config), t.method, t.stage)
        key = keys[shared] if shared in keys else keys.setdefault(shared, group_key(t))
        why = reasons[key] if key in reasons else reasons.setdefault(key, refusal(t, has_stages))
        if why:
            refusals[why] = refusals.get(why, 0) + 1
            singles.append(t)
        else:
            groups.setdefault(key, []).append(t)
    packs = []
    for members in groups.values():
        start = 0
        for size in pack_sizes(len(members), cap, slots):
            chunk = members[start : start + size]
            start += size
            if len(chunk) == 1:
                singles.append(chunk[0])
            else:
                packs.append(Pack(pack_id(chunk), tuple(chunk)))
    return Layout(packs, singles, refusals)


def layout_key(trials: list[Trial], cap: int | str, slots: int) -> str:
    """What a recorded layout was formed from: a later run with the same key runs the recorded units again."""
    ids = "\n".join(sorted(t.trial_id for t in trials))
    return hashlib.md5(f"{cap}|{slots if cap == 'auto' else 0}|{ids}".encode()).hexdigest()


def recorded(sweep_dir: str, stage: str) -> dict | None:
    """The layout a stage last launched ({"key", "pack", "units": {unit id: member ids}}), or None."""
    where = paths.layout_file(sweep_dir, stage)
    return json.loads(storage.read_text(where)) if storage.exists(where) else None


def record(sweep_dir: str, stage: str, key: str, lay: Layout, cap: int | str) -> None:
    """Save the packs' members, then the layout that names them (written last: it is what a re-run trusts)."""
    for p in lay.packs:
        save_pack(p)
    text = json.dumps({"key": key, "pack": cap, "units": lay.unit_members()})
    storage.write_text(paths.layout_file(sweep_dir, stage), text)


def finished_ids(sweep_dir: str) -> set[str]:
    """Trials whose rows say they finished (completed or diverged), wherever those rows are."""
    table = _read_columns(paths.table_dir(sweep_dir, "trials"), ["trial_id", "status"])
    if table is None:
        return set()
    rows = table.to_pydict()
    return {tid for tid, status in zip(rows["trial_id"], rows["status"]) if status in results.FINAL}


def drop_stale_rows(sweep_dir: str, lay: Layout) -> int:
    """Before a new layout runs: remove the rows of the trials it will train from the files of other units (an
    earlier layout's packs or single trials), so that no row is ever written twice. Returns the files changed."""
    todo = {tid for members in lay.unit_members().values() for tid in members}
    units = set(lay.unit_members())
    if not todo:
        return 0
    value_set = pa.array(sorted(todo), type=pa.string())
    changed = 0
    for table in paths.TABLES:
        fs, folder = storage.resolve(paths.table_dir(sweep_dir, table))
        for info in _parquet_files(fs, folder):
            unit = info.base_name[: -len(".parquet")]
            if unit in units:
                continue  # the unit rewrites its own file whole
            data = pq.read_table(info.path, filesystem=fs)
            stale = pc.is_in(data["trial_id"], value_set=value_set)
            if not pc.any(stale).as_py():
                continue
            kept = data.filter(pc.invert(stale))
            if kept.num_rows:
                results.write_table(sweep_dir, unit, table, kept)
            else:
                fs.delete_file(info.path)
            changed += 1
    return changed


def _parquet_files(fs, folder: str) -> list:
    try:
        infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    except FileNotFoundError:
        return []
    return [i for i in infos if i.is_file and i.base_name.endswith(".parquet") and not i.base_name.startswith(".")]


def _read_columns(folder_uri: str, columns: list[str]):
    fs, folder = storage.resolve(folder_uri)
    files = _parquet_files(fs, folder)
    if not files:
        return None
    import pyarrow.dataset as ds  # here, not at the top: it imports pandas, which `sparsity plan` does without

    return ds.dataset([f.path for f in files], format="parquet", filesystem=fs).to_table(columns=columns)
