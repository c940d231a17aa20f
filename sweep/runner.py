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
import shutil
import sys
import time
from dataclasses import dataclass

import cluster  # noqa: F401  (sets Tune's environment before ray.tune is imported)
from sweep import plan
from sweep.spec import Spec, SpecError
from trainables import paths
from trainables.trial import Trial


@dataclass
class Outcome:
    sweep_dir: str
    trials: int
    completed: int
    errored: int
    wall_time_s: float


def plan_hash(trials: list[Trial]) -> str:
    return hashlib.md5("\n".join(sorted(t.trial_id for t in trials)).encode()).hexdigest()


def check_existing(sweep_dir: str, trials: list[Trial], spec_path: str) -> bool:
    """True if the sweep already exists with this plan; SpecError if it exists with another one."""
    manifest = paths.manifest_file(sweep_dir)
    if not os.path.exists(manifest):
        if os.path.isdir(sweep_dir) and os.listdir(sweep_dir):
            raise SpecError(f"{spec_path}: name: {sweep_dir} exists and is not a sweep folder; choose another name")
        return False
    with open(manifest) as f:
        old = json.load(f)
    if old.get("plan_hash") != plan_hash(trials):
        new_ids, old_ids = {t.trial_id for t in trials}, set(old.get("trial_ids", []))
        raise SpecError(
            f"{spec_path}: name: sweep {os.path.basename(sweep_dir)!r} already exists at {sweep_dir} with a different "
            f"plan ({len(new_ids - old_ids)} trials added, {len(old_ids - new_ids)} removed); "
            "use a new name, or delete that folder to start over"
        )
    return True


def write_manifest(sweep_dir: str, trials: list[Trial], spec_path: str) -> None:
    os.makedirs(sweep_dir, exist_ok=True)
    import ray
    import torch

    manifest = {
        "plan_hash": plan_hash(trials),
        "trial_ids": [t.trial_id for t in trials],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "ray": ray.__version__},
    }
    tmp = paths.manifest_file(sweep_dir) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, paths.manifest_file(sweep_dir))
    if os.path.abspath(spec_path) != os.path.abspath(paths.spec_file(sweep_dir)):
        shutil.copyfile(spec_path, paths.spec_file(sweep_dir))


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
    return trial.config["trial"]["trial_id"]


def run(
    spec: Spec,
    spec_path: str,
    storage: str,
    address: str | None = None,
    num_cpus: int | None = None,
    progress: bool = True,
) -> Outcome:
    """Run (or resume) a sweep to the end. Validation errors raise SpecError before Ray starts."""
    sweep_dir = paths.sweep_dir(storage, spec.name)
    trials = plan.expand(spec, sweep_dir, spec_path)
    if address is None:
        check_fits_locally(spec, spec_path, num_cpus)
    exists = check_existing(sweep_dir, trials, spec_path)

    from ray import tune

    from cluster import connect
    from sweep.callbacks import Progress, RecordFailures
    from trainables.tune_adapter import trainable

    res = spec.resources
    started = time.perf_counter()
    with connect(address, num_cpus=num_cpus, dashboard=res.workers > 1):
        write_manifest(sweep_dir, trials, spec_path)
        # a multi-worker trial's own process only drives its Ray Train workers, which reserve their own resources
        driver = {"cpu": 1} if res.workers > 1 else {"cpu": res.cpus_per_worker, "gpu": res.gpus_per_worker}
        fn = tune.with_resources(trainable, driver)
        tune_dir = paths.tune_dir(sweep_dir)
        concurrency = max_concurrent(spec)
        reporter = Progress(len(trials), enabled=progress)
        if exists and tune.Tuner.can_restore(tune_dir):
            # the restored experiment keeps its own callbacks (pickled with it), progress included
            reporter.say(f"resuming sweep {spec.name!r} from {tune_dir}")
            tuner = tune.Tuner.restore(tune_dir, trainable=fn, resume_unfinished=True, resume_errored=True)
        else:
            tuner = tune.Tuner(
                fn,
                param_space={"trial": tune.grid_search([t.to_dict() for t in trials])},
                tune_config=tune.TuneConfig(
                    max_concurrent_trials=concurrency,
                    trial_name_creator=_trial_name,
                    reuse_actors=False if res.workers > 1 else None,  # a fresh driver process per Ray Train run
                    trial_dirname_creator=_trial_name,
                ),
                run_config=tune.RunConfig(
                    name=os.path.basename(tune_dir),
                    storage_path=sweep_dir,
                    verbose=0,
                    callbacks=[reporter, RecordFailures()],
                    failure_config=tune.FailureConfig(max_failures=spec.failure.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                ),
            )
        reporter.say(f"sweep {spec.name!r}: {len(trials)} trials -> {sweep_dir}")
        grid = tuner.fit()
    errored = sum(r.error is not None for r in grid)
    return Outcome(sweep_dir, len(trials), len(trials) - errored, errored, time.perf_counter() - started)
