"""Spec -> Ray Tune run. The only place sweep/ calls Ray Tune.

A sweep folder is tied to its plan: running a spec again under the same name restores the Tune experiment
(finished trials are not re-run, errored ones continue from their last checkpoint); a *different* plan under
an existing name is refused, because Tune would overwrite the old experiment's state (ray#35812).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import cluster  # noqa: F401  (sets Tune's environment before ray.tune is imported)
from sweep import interrupts, plan, search
from sweep.packing import unit_name, unit_size
from sweep.spec import Spec, SpecError
from trainables.records import integrity, paths
from trainables.records import storage as store  # `storage` is run()'s argument
from trainables.trial import Trial


@dataclass
class Outcome:
    sweep_dir: str
    trials: int
    completed: int
    errored: int
    wall_time_s: float
    skipped: int = 0  # dependent-stage trials whose parent did not complete
    interrupted: int | None = None  # the signal that stopped the run (SIGINT, SIGTERM); `completed` is then
    # counted from the results, as a re-run counts them


def plan_hash(trials: list[Trial]) -> str:
    """What ties a sweep folder to its spec: the trials the spec plans by itself (not those resolved from a
    stage's results, e.g. a search's phase 2)."""
    return hashlib.md5("\n".join(sorted(t.trial_id for t in trials if not t.resolved)).encode()).hexdigest()


def check_existing(sweep_dir: str, trials: list[Trial], spec_path: str) -> bool:
    """True if the sweep already exists with this plan; SpecError if it exists with another one."""
    manifest = paths.manifest_file(sweep_dir)
    if not store.exists(manifest):
        if not store.is_empty_or_missing(sweep_dir):
            raise SpecError(f"{spec_path}: name: {sweep_dir} exists and is not a sweep folder; choose another name")
        return False
    old = json.loads(store.read_text(manifest))
    if old.get("plan_hash") != plan_hash(trials):
        new_ids, old_ids = {t.trial_id for t in trials}, set(old.get("trial_ids", []))
        raise SpecError(
            f"{spec_path}: name: sweep {paths.name(sweep_dir)!r} already exists at {sweep_dir} with a different "
            f"plan ({len(new_ids - old_ids)} trials added, {len(old_ids - new_ids)} removed); "
            "use a new name, or delete that folder to start over"
        )
    return True


def write_manifest(sweep_dir: str, trials: list[Trial], spec_path: str) -> None:
    """The manifest (plan hash, trial ids, versions) and a copy of the spec, so `sparsity resume` needs only the
    sweep folder. Each file is replaced whole."""
    import ray
    import torch

    store.make_dirs(sweep_dir)
    manifest = {
        "plan_hash": plan_hash(trials),
        "trial_ids": [t.trial_id for t in trials],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "ray": ray.__version__},
    }
    store.write_text(paths.manifest_file(sweep_dir), json.dumps(manifest, indent=1))
    target = paths.spec_file(sweep_dir)
    if paths.is_uri(target) or os.path.abspath(spec_path) != os.path.abspath(target):
        with open(spec_path, "rb") as f:
            text = f.read()
        if not store.exists(target) or store.read_bytes(target) != text:
            store.write_bytes(target, text)


def trial_cpus(spec: Spec) -> float:
    """CPUs one trial holds: its own process, plus its Ray Train workers when it has several."""
    res = spec.resources
    return 1 + res.workers * res.cpus_per_worker if res.workers > 1 else res.cpus_per_worker


def check_fits_locally(spec: Spec, spec_path: str, num_cpus: int | None) -> None:
    """An embedded Ray smaller than one trial would wait for resources forever: refuse up front."""
    have = num_cpus or os.cpu_count() or 1
    need = trial_cpus(spec)
    if need > have:
        res = spec.resources
        raise SpecError(
            f"{spec_path}: resources: one trial needs {need:g} CPUs (1 driver + {res.workers} workers x "
            f"{res.cpus_per_worker:g}) but the local Ray has {have}; pass --num-cpus {math.ceil(need)} (logical CPUs "
            "may exceed the physical ones) or use fewer workers"
        )


def max_concurrent(spec: Spec) -> int | None:
    """Multi-worker trials: no more at once than the cluster holds whole. Otherwise every trial's driver starts,
    takes a CPU, and none can place its workers: the sweep waits forever (measured: 2 trials x 2 workers, 3 CPUs)."""
    import ray

    res = spec.resources
    limit = res.max_concurrent_trials or None
    if res.workers > 1:
        total = ray.cluster_resources()
        fit = int(total.get("CPU", 0) // trial_cpus(spec))
        if res.gpus_per_worker:
            fit = min(fit, int(total.get("GPU", 0) // (res.workers * res.gpus_per_worker)))
        limit = max(1, min(limit or fit, fit))
    return limit


def _trial_name(trial) -> str:
    return unit_name(trial.config)


def _units(
    spec: Spec,
    sweep_dir: str,
    stage: str,
    runnable: list[Trial],
    done: Callable[[], set[str]] | None,
    restorable: bool,
    label: str,
):
    """The Tune trials of a stage, and whether its last Tune experiment can be restored as it is: the same
    trials, grouped as before. Otherwise the trials whose rows say they finished (`done()`, None for a new sweep)
    are left out (whatever units they ran in), the others are grouped afresh, and rows they left in other units'
    files are dropped."""
    import ray

    from sweep import packing
    from trainables.packing.pack import member_config

    exists = done is not None
    res = spec.resources
    slots = packing.auto_slots(ray.cluster_resources().get("CPU", 1), trial_cpus(spec))
    key = packing.layout_key(runnable, res.pack, slots)
    before = packing.recorded(sweep_dir, stage) if exists else None
    if restorable and before is not None and before["key"] == key:
        return None, True, 0
    if restorable and before is None and res.pack == 1 and _launched(sweep_dir, stage, runnable):
        return None, True, 0  # a sweep recorded before packing existed: one trial per Tune trial, as now
    finished = done() if exists else set()
    todo = [t for t in runnable if t.trial_id not in finished]
    lay = packing.layout(todo, res.pack, slots, bool(spec.stages))
    for why, n in lay.refusals.items():
        print(f"{label}: {n} trials run unpacked: {why}")
    if exists and not _same_units(before, lay):
        packing.drop_stale_rows(sweep_dir, lay)
    packing.record(sweep_dir, stage, key, lay, res.pack)
    units = [{"pack": member_config(p)} for p in lay.packs] + [{"trial": t.to_dict()} for t in lay.singles]
    return units, False, len(runnable) - len(todo)


def _same_units(before: dict | None, lay) -> bool:
    """Whether each unit of `lay` ran before with the same members: its trials' rows are then in its own file only
    (which it rewrites whole), and no other file needs reading (a re-run of a few trials whose files were lost)."""
    if before is None:
        return False
    units = before["units"]
    return all(units.get(unit) == members for unit, members in lay.unit_members().items())


def run(
    spec: Spec,
    spec_path: str,
    storage: str,
    address: str | None = None,
    num_cpus: int | None = None,
    progress: bool = True,
    on_stuck: Callable[[Outcome], None] | None = None,
) -> Outcome:
    """Run (or resume) a sweep to the end. Validation errors raise SpecError, an unusable `storage` (a folder,
    or a URI such as s3://bucket/prefix) StorageError, before Ray starts. SIGINT or SIGTERM stops the run at
    any moment (sweep/interrupts.py): the Outcome then names the signal and counts the finished trials from
    the results. A stop that cannot end gracefully (Ray's processes got the signal too, or it takes too long)
    calls `on_stuck` with that Outcome and ends the process. Result files a re-run finds unreadable are moved
    aside and their trials run again."""
    started = time.perf_counter()
    sweep_dir = paths.sweep_dir(storage, spec.name)
    trials: list[Trial] = []

    def interrupted(signum: int) -> Outcome:
        known = store.exists(paths.manifest_file(sweep_dir))  # (a sweep not begun gets no file from counting)
        done = integrity.scan(sweep_dir, ("trials",), remember=known).finished_ids() & {t.trial_id for t in trials}
        return Outcome(sweep_dir, len(trials), len(done), 0, time.perf_counter() - started, interrupted=signum)

    from cluster.local import embedded_lost

    last_words = (lambda signum: on_stuck(interrupted(signum))) if on_stuck else None
    with interrupts.Guard(last_words, embedded_lost) as guard:
        trials = plan.expand(spec, sweep_dir, spec_path)
        if address is None:
            check_fits_locally(spec, spec_path, num_cpus)
        store.check_root(storage)
        exists = check_existing(sweep_dir, trials, spec_path)
        found, damaged = None, False
        if exists:  # the results a re-run trusts: the files that say which trials finished, and the others
            found, lines = integrity.set_aside(sweep_dir, integrity.scan(sweep_dir, remember=True))
            for line in lines:
                print(f"sweep {spec.name!r}: {line}", flush=True)
            damaged = bool(lines)
        try:
            errored, skipped = _stages(
                spec, spec_path, sweep_dir, trials, found, damaged, guard, address, num_cpus, progress
            )
        except interrupts.Interrupted:
            pass
        except SystemExit as e:  # Ray's own SIGTERM handler, in place while ray.init runs
            if e.code != signal.SIGTERM:
                raise
            guard.signum = signal.SIGTERM
        if guard.signum is None:
            finished = len(trials) - errored - skipped
            return Outcome(sweep_dir, len(trials), finished, errored, time.perf_counter() - started, skipped)
    return interrupted(guard.signum)


def _stages(spec, spec_path, sweep_dir, trials, found, damaged, guard, address, num_cpus, progress):
    """Each stage's Tune experiment in turn, on the embedded or joined Ray: (trials errored, trials skipped)."""
    from ray import tune

    from cluster import connect
    from sweep.callbacks import Progress, RecordFailures
    from trainables.training.tune_adapter import trainable

    exists = found is not None
    res = spec.resources
    errored, skipped = 0, 0
    guard.check()
    guard.starting = True
    with connect(address, num_cpus=num_cpus, dashboard=res.workers > 1):
        guard.take()  # ray.init replaced the SIGTERM handler
        guard.starting = False
        guard.check()
        write_manifest(sweep_dir, trials, spec_path)
        # a multi-worker trial's own process only drives its Ray Train workers, which reserve their own resources
        driver = {"cpu": 1} if res.workers > 1 else {"cpu": res.cpus_per_worker, "gpu": res.gpus_per_worker}
        fn = tune.with_resources(trainable, driver)
        by_stage = plan.stage_of(trials)
        order = list(by_stage)
        dynamic = spec.search is not None and not spec.search.structure
        if dynamic and search.PHASE2 not in order:
            order.append(search.PHASE2)
        for stage in order:
            guard.check()
            label = f"sweep {spec.name!r}" + ("" if len(order) == 1 else f", stage {stage!r}")
            members = by_stage.get(stage, [])
            if dynamic and stage == search.PHASE2:
                members = _resolve_phase2(spec, spec_path, sweep_dir, trials, label)
            runnable, orphans, unchosen = members, 0, 0
            if stage in spec.stages:
                runnable, orphans, unchosen = _runnable(members, trials, spec.stages[stage].parents)
            if orphans:
                print(f"{label}: {orphans} trials skipped: their parent did not complete")
            if unchosen:
                print(f"{label}: {unchosen} trials not run: their parent is not the best configuration at its sparsity")
            skipped += orphans + unchosen
            if not runnable:
                continue
            tune_dir = paths.tune_dir(sweep_dir, stage)
            # with a damaged file set aside, its trials must run again: Tune's state says they ended
            restorable = exists and not damaged and tune.Tuner.can_restore(tune_dir) and _began(tune_dir)
            done = None  # (read only if the stage runs afresh)
            if exists:
                done = found.finished_ids if stage == "main" else lambda: _finished(sweep_dir)
            units, restore, already = _units(spec, sweep_dir, stage, runnable, done, restorable, label)
            reporter = Progress(len(runnable), enabled=progress, already=already)
            if restore:
                # the restored experiment keeps its own callbacks (pickled with it), progress included
                reporter.say(f"resuming {label} from {paths.redact(tune_dir)}")
                tuner = tune.Tuner.restore(tune_dir, trainable=fn, resume_unfinished=True, resume_errored=True)
            elif not units:
                reporter.say(f"{label}: all {len(runnable)} trials had already finished")
                continue
            else:
                tuner = tune.Tuner(
                    fn,
                    param_space={"unit": tune.grid_search(units)},
                    tune_config=tune.TuneConfig(
                        max_concurrent_trials=max_concurrent(spec),
                        trial_name_creator=_trial_name,
                        # one process serves trial after trial (no torch import per trial); a multi-worker
                        # trial's driver is fresh each time (a Ray Train run per process)
                        reuse_actors=res.workers == 1,
                        trial_dirname_creator=_trial_name,
                    ),
                    run_config=tune.RunConfig(
                        name=paths.name(tune_dir),
                        storage_path=sweep_dir,
                        verbose=0,
                        callbacks=[reporter, RecordFailures()],
                        failure_config=tune.FailureConfig(max_failures=spec.failure.max_failures),
                        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                    ),
                )
            earlier = f" ({already} already finished)" if already else ""
            as_units = "" if restore else f"{earlier} as {len(units)} Tune trials"
            reporter.say(f"{label}: {len(runnable)} trials{as_units} -> {paths.redact(sweep_dir)}")
            with guard.tune():
                grid = tuner.fit()
            if not restore:  # a restored experiment counts with its own (restored) reporter
                reporter.close()
            guard.check()  # an interrupted fit returns as if it had ended
            errored += sum(unit_size(r.config) for r in grid if r.error is not None)
    return errored, skipped


def _resolve_phase2(spec: Spec, spec_path: str, sweep_dir: str, trials: list[Trial], label: str) -> list[Trial]:
    """The search's phase 2 from phase 1's results (sweep/search.py), chosen when phase 1 has run and recorded
    in the sweep folder; `trials` (the run's plan) gets its trials, replacing any of an earlier choice."""
    from analysis.load import read_table

    columns = ["stage", "status", "primary", "value", "active_d1", "active_d2", "active_d3"]
    rows = read_table(sweep_dir, "trials", columns, {"stage": [search.PHASE1]})
    if len(rows):
        rows = rows[rows["primary"].fillna(True).astype(bool)]
    d_in, d_out = plan.chain_io(spec)
    choice = search.choose(rows.to_dict("records") if len(rows) else [], spec.search.target, d_in, d_out)
    before = search.recorded(sweep_dir)
    search.record(sweep_dir, choice)
    trials[:] = [t for t in trials if not (t.stage == search.PHASE2 and t.resolved)]
    if choice["structure"] is None:
        best = choice["best"]
        near = f" (the best: {best[1]:.4f}, structure {tuple(best[0])})" if best else ""
        print(f"{label}: no structure reached accuracy {spec.search.target:g} in phase 1{near}; phase 2 not run")
        write_manifest(sweep_dir, trials, spec_path)
        return []
    structure = tuple(choice["structure"])
    if before and before.get("structure") and tuple(before["structure"]) != structure:
        print(f"{label}: phase 1's results now choose {structure}, not {tuple(before['structure'])} as before")
    new = plan.search_masks(spec, sweep_dir, structure, resolved=True)
    print(
        f"{label}: phase 1 chose structure {structure} ({choice['params']} dense weights + biases, accuracy "
        f"{choice['accuracy']:.4f}; the fewest of {choice['structures_reaching']} structures reaching "
        f"{spec.search.target:g}): {len(new)} masked trials",
        flush=True,
    )
    trials += new
    write_manifest(sweep_dir, trials, spec_path)
    return new


def _began(tune_dir: str) -> bool:
    """Whether a Tune experiment got as far as its trials: a driver killed while Tune set it up leaves only
    tuner.pkl (no parameter space, no experiment state), which restores to trials without a config."""
    import pyarrow.fs as pafs

    fs, folder = store.resolve(tune_dir)
    try:
        names = [f.base_name for f in fs.get_file_info(pafs.FileSelector(folder))]
    except (FileNotFoundError, OSError):
        return False
    return any(n.startswith("experiment_state") for n in names)


def _finished(sweep_dir: str) -> set[str]:
    """Trials whose rows say they finished, read when a dependent stage starts (its parents' stage just ran)."""
    return integrity.scan(sweep_dir, ("trials",), remember=True).finished_ids()


def _runnable(children: list[Trial], trials: list[Trial], parents: str) -> tuple[list[Trial], int, int]:
    """The children to launch: those whose parent completed (its final masks are theirs) and, with
    `parents: best`, whose parent is of the best configuration at its method and sparsity (mean over seeds of
    the primary metric). Also how many were left out for each reason. Read when the stage starts: dependent
    stages run after the stage before them has ended."""
    from trainables.records import results

    by_id = {t.trial_id: t for t in trials}
    rows = {}
    for parent_id in dict.fromkeys(c.parent_trial_id for c in children):
        found = results.read_rows(by_id[parent_id], "trials")
        if found and all(r["status"] == "completed" for r in found):
            rows[parent_id] = next(r for r in found if r.get("primary") in (True, None))
    done = [c for c in children if c.parent_trial_id in rows]
    if parents != "best" or not done:
        return done, len(children) - len(done), 0
    scores: dict[tuple, dict[str, list[float]]] = {}
    for row in rows.values():
        cell = (row["method"], row["target_sparsity"])
        scores.setdefault(cell, {}).setdefault(row["config_hash"], []).append(row["value"])
    sign = -1.0 if next(iter(rows.values()))["mode"] == "max" else 1.0  # one task: one direction
    best = {min(configs, key=lambda h: (sign * sum(configs[h]) / len(configs[h]), h)) for configs in scores.values()}
    chosen = [c for c in done if by_id[c.parent_trial_id].config_hash in best]
    return chosen, len(children) - len(done), len(done) - len(chosen)


def _launch_file(sweep_dir: str, stage: str) -> str:
    return paths.join(sweep_dir, f"tune-{stage}.trials")


def _launched(sweep_dir: str, stage: str, runnable: list[Trial]) -> bool:
    """Sweeps recorded before packing: whether a stage's Tune experiment holds these trials (a dependent stage
    can grow when more parents completed, and a restored experiment cannot take new trials)."""
    if stage == "main":  # the first stage always holds the whole first-stage plan
        return True
    where = _launch_file(sweep_dir, stage)
    return store.exists(where) and store.read_text(where) == plan_hash(runnable)
