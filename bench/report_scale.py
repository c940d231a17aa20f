"""`sparsity report` at scale: synthesise a large Sparsest-Models-style sweep folder, then time the report.

    .venv/bin/python bench/report_scale.py --trials 500000 --files 1000 --out /tmp/scale

The folder has the layout and schemas a real sweep writes (trainables/records/results.py): task cubist_spiral,
metric accuracy (max), a dense baseline and several pruning methods at ten target sparsities, seeds 0-4, and a
grid of recipe and pruning hyper-parameters; one `trials` and one `evals` row per trial (the final evaluation),
four `layers` rows per trial, spread over --files files per table ("packs" of consecutive trials). A few trials
diverged or failed, a few miss their target sparsity, and a few are still running (evals rows only), so every
section of the report has something to show. The data are drawn with numpy and written with pyarrow, so
500,000 trials take seconds to write.

The report runs in a subprocess (`python -m sweep.cli report`), timed with /usr/bin/time -v (wall and CPU time,
peak resident memory), or with getrusage where that tool is missing. With --reuse the folder is kept and only
timed (its size is then whatever it was written with); --pythonpath times another checkout's code on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script from anywhere, or imported by tests/test_report_scale.py
    sys.path.insert(0, ROOT)

from trainables.records import paths, results  # noqa: E402

TASK = "cubist_spiral"
SEEDS = (0, 1, 2, 3, 4)
TARGETS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99)
# method -> (how much accuracy it loses towards full sparsity); dense has no target and no pruning options
METHODS = {"dense": 0.0, "magnitude": 0.25, "random": 0.45, "snip": 0.32, "rigl": 0.28, "gmp_cubic": 0.26}
LAYERS = ("0.weight", "2.weight", "4.weight", "6.weight")
# What sweep/plan.hyperparameter_columns gives for cubist_spiral with the gradual methods (magnitude, random).
HP_COLUMNS = (
    ("epochs", "int"),
    ("batch_size", "int"),
    ("optimizer", "str"),
    ("lr", "float"),
    ("lr_schedule", "str"),
    ("momentum", "float"),
    ("weight_decay", "float"),
    ("eval_every", "int"),
    ("width", "int"),
    ("begin_step", "int"),
    ("end_step", "int"),
    ("frequency", "int"),
    ("allocation", "str"),
    ("first_layer_dense", "bool"),
    ("layer_overrides", "str"),
)
TASK_GRID = {
    "epochs": [30, 50],
    "batch_size": [64, 128],
    "optimizer": ["sgd"],
    "lr": [0.03, 0.1, 0.3],
    "lr_schedule": ["cosine", "multistep", "constant"],
    "momentum": [0.8, 0.9],
    "weight_decay": [0.0, 1e-4, 5e-4],
    "eval_every": [390],
    "width": list(range(3, 17)),
}
METHOD_GRID = {
    "begin_step": [0, 390],
    "end_step": [3900, 7800],
    "frequency": [50, 100],
    "allocation": ["uniform", "global", "erk"],
    "first_layer_dense": [False],
    "layer_overrides": ["{}"],  # a dict option, stored as JSON like every dict hyper-parameter
}
STEPS_PER_EPOCH_AT_128 = 390
FAILED, DIVERGED, MISSED = 0.001, 0.005, 0.0005  # fractions of trials


def generate(out: str, trials: int, files: int, seed: int = 0, running: int | None = None) -> dict:
    """Write a synthetic sweep of `trials` finished trials into the folder `out` (replaced), its rows spread over
    `files` files per table, plus `running` unfinished trials (evals rows only; default 0.1% of `trials`).
    Returns a summary: trial ids, hyper-parameter columns, rows per table."""
    rng = np.random.default_rng(seed)
    running = max(1, trials // 1000) if running is None else running
    configs = _configs(-(-(trials + running) // len(SEEDS)), rng)
    rows = _trial_frame(configs, trials + running, rng)
    if os.path.exists(out):
        shutil.rmtree(out)
    name = os.path.basename(os.path.abspath(out))
    tables = _tables(rows, configs, name, trials)
    for table, (data, owner) in tables.items():
        _write_packs(out, table, data, owner, min(files, trials), trials)
    ids = rows["trial_id"].to_pylist()
    _write_manifest(out, ids)
    _write_spec(out, name)
    return {
        "trial_ids": ids,
        "hp_columns": HP_COLUMNS,
        "rows": {t: d.num_rows for t, (d, _) in tables.items()},
        "files": files,
    }


def _grid(method: str) -> dict[str, list]:
    return {**TASK_GRID, **(METHOD_GRID if method != "dense" else {})}


def _configs(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`n` distinct configurations spread evenly over the (method, target) cells; dense has one cell (target 0).
    Per configuration: method, target, config_hash and one index into each hyper-parameter's values."""
    cells = [("dense", 0.0)] + [(m, t) for m in METHODS if m != "dense" for t in TARGETS]
    dense_size = int(np.prod([len(v) for v in _grid("dense").values()]))
    dense_n = min(dense_size, n // len(cells))
    sparse_n = np.array_split(np.arange(n - dense_n), len(cells) - 1)
    parts = []
    for (method, target), count in zip(cells, [dense_n] + [len(s) for s in sparse_n]):
        grid = _grid(method)
        size = int(np.prod([len(v) for v in grid.values()]))
        if count > size:
            raise ValueError(f"{count} configurations asked of a cell whose grid has {size}; ask fewer trials")
        flat = np.sort(rng.choice(size, count, replace=False))
        picks = np.unravel_index(flat, [len(v) for v in grid.values()])
        index = {k: p for k, p in zip(grid, picks)}
        hashes = [hashlib.md5(f"{TASK},{method},{target!r},{i}".encode()).hexdigest() for i in flat]
        parts.append({"method": method, "target": target, "index": index, "hash": hashes})
    return _stack(parts)


def _stack(parts: list[dict]) -> dict[str, np.ndarray]:
    """Concatenate per-cell configurations; a method option's index is -1 for dense (no such option)."""
    counts = [len(p["hash"]) for p in parts]
    out = {
        "method": np.repeat([p["method"] for p in parts], counts),
        "target": np.repeat([p["target"] for p in parts], counts),
        "config_hash": np.concatenate([p["hash"] for p in parts]),
    }
    for name in {**TASK_GRID, **METHOD_GRID}:
        out[name] = np.concatenate([p["index"].get(name, np.full(c, -1)) for p, c in zip(parts, counts)])
    return out


def _trial_frame(configs: dict[str, np.ndarray], n: int, rng: np.random.Generator) -> dict[str, pa.Array]:
    """Per trial (configuration x seed, the plan's order): the key columns and the outcome."""
    config = np.repeat(np.arange(len(configs["config_hash"])), len(SEEDS))[:n]
    seed = np.tile(np.array(SEEDS), len(configs["config_hash"]))[:n]
    method, target = configs["method"][config], configs["target"][config]
    prefix = [f"{m}-{t:g}-{h[:10]}-s" for m, t, h in zip(configs["method"], configs["target"], configs["config_hash"])]
    seeds = pa.array([str(s) for s in SEEDS]).take(pa.array(seed))
    trial_id = pc.binary_join_element_wise(pa.array(prefix).take(pa.array(config)), seeds, "")
    status = np.where(rng.random(n) < FAILED, "failed", np.where(rng.random(n) < DIVERGED, "diverged", "completed"))
    achieved = np.where(method == "dense", 0.0, np.clip(target + rng.normal(0, 2e-4, n), 0, 1))
    missed = (rng.random(n) < MISSED) & (method != "dense")
    achieved = np.where(missed, achieved - rng.uniform(0.006, 0.03, n), achieved)
    value = _accuracy(configs, config, method, target, rng)
    value = np.where(status == "completed", value, np.nan)
    epochs = np.array(TASK_GRID["epochs"])[configs["epochs"][config]]
    batch = np.array(TASK_GRID["batch_size"])[configs["batch_size"][config]]
    total = epochs * STEPS_PER_EPOCH_AT_128 * 128 // batch
    steps = np.where(status == "completed", total, (total * rng.uniform(0.1, 0.9, n)).astype(np.int64))
    width = np.array(TASK_GRID["width"])[configs["width"][config]]
    return {
        "config": config,
        "trial_id": trial_id,
        "seed": seed,
        "method": method,
        "target": target,
        "status": status,
        "value": value,
        "sparsity": achieved,
        "steps": steps,
        "wall_time_s": steps * (0.4 + 0.02 * width) * 1e-3 * rng.uniform(0.9, 1.1, n),
        "width": width,
    }


def _accuracy(configs, config, method, target, rng) -> np.ndarray:
    """Accuracy: the method's loss towards full sparsity, a best learning rate and width, per-configuration and
    per-seed noise; so each cell has one clear best configuration, as in a real sweep."""
    lr = np.array(TASK_GRID["lr"])[configs["lr"][config]]
    width = np.array(TASK_GRID["width"])[configs["width"][config]]
    strength = np.vectorize(METHODS.get)(method)
    value = 0.995 - strength * target**4 - 0.02 * np.abs(np.log10(lr / 0.1)) - 0.15 / width
    luck = rng.normal(0, 0.01, len(configs["config_hash"]))[config]
    return np.clip(value + luck + rng.normal(0, 0.005, len(config)), 0.5, 1.0)


def _tables(rows: dict, configs: dict, name: str, finished: int) -> dict[str, tuple[pa.Table, np.ndarray]]:
    """Each table and, per row, the index of the trial it belongs to (which decides its file)."""
    n = len(rows["seed"])
    done = np.arange(finished)
    evals = _evals(rows, configs, name, np.arange(n))
    trials = _trials(rows, configs, name, done)
    kept = done[rows["status"][:finished] != "failed"]  # a failed trial wrote no layers
    layers = _layers(rows, configs, name, kept)
    return {"trials": (trials, done), "evals": (evals, np.arange(n)), "layers": (layers, np.repeat(kept, len(LAYERS)))}


def _keys(rows: dict, configs: dict, name: str, at: np.ndarray) -> dict[str, pa.Array]:
    n = len(at)
    return {
        "sweep": pa.repeat(pa.scalar(name), n),
        "trial_id": rows["trial_id"].take(pa.array(at)),
        "parent_trial_id": pa.nulls(n, pa.string()),
        "stage": pa.repeat(pa.scalar("main"), n),
        "task": pa.repeat(pa.scalar(TASK), n),
        "method": pa.array(rows["method"][at]),
        "seed": pa.array(rows["seed"][at], pa.int64()),
        "config_hash": pa.array(configs["config_hash"]).take(pa.array(rows["config"][at])),
        "target_sparsity": pa.array(rows["target"][at], pa.float64()),
    }


def _table(columns: dict[str, pa.Array], schema: pa.Schema) -> pa.Table:
    """The columns as a table of `schema`; the columns a pruning sweep of this kind leaves null (nnz targets and
    counts, connectivity: the synthetic MLP is not measured) are nulls."""
    n = len(next(iter(columns.values())))
    full = {f.name: columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in schema}
    return pa.table(full, schema=schema)


def _hps(configs: dict, config: np.ndarray) -> dict[str, pa.Array]:
    """One column per hyper-parameter; null where the trial's method has no such option (dense)."""
    out = {}
    for name, kind in HP_COLUMNS:
        values = {**TASK_GRID, **METHOD_GRID}[name]
        index = configs[name][config]
        column = pa.array(values, results.ARROW_TYPES[kind]).take(pa.array(np.maximum(index, 0)))
        out[name] = pc.if_else(pa.array(index < 0), pa.scalar(None, column.type), column)
    return out


def _trials(rows: dict, configs: dict, name: str, at: np.ndarray) -> pa.Table:
    n, status = len(at), rows["status"][at]
    failed = status == "failed"
    columns = {
        **_keys(rows, configs, name, at),
        "source": pa.repeat(pa.scalar("sweep"), n),
        "status": pa.array(status),
        "metric": pa.repeat(pa.scalar("accuracy"), n),
        "primary": pa.repeat(pa.scalar(True), n),
        "metric_detail": pa.nulls(n, pa.string()),
        "mode": pa.array(np.where(failed, None, "max"), pa.string()),  # a failed trial's row has no mode
        "value": pa.array(rows["value"][at]),
        "sparsity": pa.array(rows["sparsity"][at]),
        "steps": pa.array(rows["steps"][at], pa.int64()),
        "wall_time_s": pa.array(rows["wall_time_s"][at]),
        **_hps(configs, rows["config"][at]),
    }
    return _table(columns, results.schema("trials", HP_COLUMNS))


def _evals(rows: dict, configs: dict, name: str, at: np.ndarray) -> pa.Table:
    """The last evaluation of every trial (running ones too: their latest so far)."""
    n = len(at)
    value = np.where(np.isnan(rows["value"][at]), 0.5, rows["value"][at])  # a diverged trial still evaluated
    lr = np.array(TASK_GRID["lr"])[configs["lr"][rows["config"][at]]]
    columns = {
        **_keys(rows, configs, name, at),
        "step": pa.array(rows["steps"][at], pa.int64()),
        "metric": pa.repeat(pa.scalar("accuracy"), n),
        "primary": pa.repeat(pa.scalar(True), n),
        "metric_detail": pa.nulls(n, pa.string()),
        "value": pa.array(value),
        "sparsity": pa.array(rows["sparsity"][at]),
        "loss": pa.array(-np.log(value)),
        "current_lr": pa.array(lr * 0.01),
        "wall_time_s": pa.array(rows["wall_time_s"][at]),
        **_hps(configs, rows["config"][at]),
    }
    return _table(columns, results.schema("evals", HP_COLUMNS))


def _layers(rows: dict, configs: dict, name: str, at: np.ndarray) -> pa.Table:
    """The MLP's four prunable tensors (2 -> w -> w -> w -> 1) per trial; the first and last kept denser than
    the middle ones, as ERK-like allocations do."""
    k = len(LAYERS)
    trial = np.repeat(at, k)
    width = rows["width"][trial]
    layer = np.tile(np.arange(k), len(at))
    rows_, cols = np.select([layer == 0, layer == 3], [width, 1], width), np.select([layer == 0], [2], width)
    numel = rows_ * cols
    skew = np.array([0.8, 1.05, 1.05, 0.9])[layer]
    sparsity = np.clip(rows["sparsity"][trial] * skew, 0.0, 1.0 - 1.0 / numel)
    nonzero = np.round(numel * (1 - sparsity)).astype(np.int64)
    shape = pc.binary_join_element_wise(pa.array(rows_.astype(str)), pa.array(cols.astype(str)), "x")
    columns = {
        **_keys(rows, configs, name, trial),
        "layer": pa.array(LAYERS).take(pa.array(layer)),
        "shape": shape,
        "numel": pa.array(numel, pa.int64()),
        "nonzero": pa.array(nonzero),
        "sparsity": pa.array(1.0 - nonzero / numel),
    }
    return _table(columns, results.schema("layers"))


def _write_packs(out: str, table: str, data: pa.Table, owner: np.ndarray, files: int, finished: int) -> None:
    """Split `data` into `files` units by trial: consecutive finished trials share a unit (a pack), the running
    ones join the last; a unit's file has the same name in every table, as trainables/packing writes them."""
    folder = paths.table_dir(out, table)
    os.makedirs(folder, exist_ok=True)
    unit = np.minimum(owner * files // finished, files - 1)  # rows are in trial order, so a unit's rows are a run
    starts = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]])
    for start, stop in zip(starts, [*starts[1:], len(owner)]):
        pq.write_table(data.slice(start, stop - start), os.path.join(folder, f"pack-{unit[start]:06d}.parquet"))


def _write_manifest(out: str, ids: list[str]) -> None:
    """As sweep/runner.write_manifest writes it (versions read from the installed packages: no torch import)."""
    versions = {"python": platform.python_version()}
    for package in ("torch", "ray"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    manifest = {
        "plan_hash": hashlib.md5("\n".join(sorted(ids)).encode()).hexdigest(),
        "trial_ids": ids,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions,
    }
    with open(paths.manifest_file(out), "w") as f:
        json.dump(manifest, f, indent=1)


def _write_spec(out: str, name: str) -> None:
    """A spec of the same shape (the report does not read it; `sparsity resume` would)."""
    lines = [f"name: {name}", f"task: {TASK}", "task_options:"]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in TASK_GRID.items()]
    lines += ["methods:"] + [f"  {m}: {{}}" if m == "dense" else f"  {m}: {json.dumps(METHOD_GRID)}" for m in METHODS]
    lines += [f"sparsity: {list(TARGETS)}", f"seeds: {list(SEEDS)}"]
    with open(paths.spec_file(out), "w") as f:
        f.write("\n".join(lines) + "\n")


def time_report(sweep_dir: str, pythonpath: str | None = None) -> dict:
    """Run `sparsity report` in a fresh interpreter: wall and CPU seconds, peak resident MB, the 1-minute load
    average when it started (other work on the machine stretches the wall time), exit status and output.
    `pythonpath` goes first on the child's PYTHONPATH (to time another checkout's analysis package)."""
    command = [sys.executable, "-m", "sweep.cli", "report", sweep_dir]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (pythonpath, ROOT) if p)}
    cwd = pythonpath or ROOT  # `python -m` puts the working directory first on sys.path, before PYTHONPATH
    load = os.getloadavg()[0]
    if os.path.exists(GNU_TIME):
        started = time.perf_counter()
        done = subprocess.run([GNU_TIME, "-v", *command], cwd=cwd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        rss = _field(done.stderr, r"Maximum resident set size \(kbytes\)") / 1024
        cpu = _field(done.stderr, r"User time \(seconds\)") + _field(done.stderr, r"System time \(seconds\)")
    else:  # the children's rusage: this run's, as it is the only child waited for so far
        import resource

        started = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # ru_maxrss: KiB on Linux
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_mb": rss,
        "load": load,
        "rc": done.returncode,
        "stdout": done.stdout,
        "stderr": done.stderr,
    }


GNU_TIME = "/usr/bin/time"


def _field(text: str, label: str) -> float:
    found = re.search(label + r": ([\d.]+)", text)
    return float(found.group(1)) if found else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=500_000, help="finished trials (trials-table rows)")
    p.add_argument("--files", type=int, default=1_000, help="files per results table")
    p.add_argument("--out", required=True, help="the sweep folder to write (replaced)")
    p.add_argument("--repeat", type=int, default=1, help="time the report this many times")
    p.add_argument("--reuse", action="store_true", help="keep the folder if it holds a sweep (skip generating)")
    p.add_argument("--pythonpath", help="run the report with the packages of this folder first (another checkout)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not (args.reuse and os.path.exists(paths.manifest_file(args.out))):
        started = time.perf_counter()
        summary = generate(args.out, args.trials, args.files, args.seed)
        print(f"wrote {summary['rows']} rows, {args.files} files per table, in {time.perf_counter() - started:.1f} s")
    trials = ds.dataset(paths.table_dir(args.out, "trials"), format="parquet")
    rows, files = trials.count_rows(), len(trials.files)  # what the folder holds (with --reuse, not the arguments)
    print("trial rows | files/table | wall s | CPU s | peak RSS MB | load before")
    print("---|---|---|---|---|---")
    for _ in range(args.repeat):
        run = time_report(args.out, args.pythonpath)
        if run["rc"] != 0:
            print(run["stdout"][-2000:], run["stderr"][-4000:], sep="\n", file=sys.stderr)
            return run["rc"]
        print(
            f"{rows:,} | {files:,} | {run['wall_s']:.2f} | {run['cpu_s']:.2f} | {run['rss_mb']:,.0f} | "
            f"{run['load']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
