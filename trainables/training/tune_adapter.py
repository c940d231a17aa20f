"""The only place trainables/ touches Ray Tune: a function trainable and its Session."""

from __future__ import annotations

import tempfile
from typing import Any

import pyarrow.fs as pafs
from ray import tune

from trainables.records import paths, storage
from trainables.training.loop import run_trial
from trainables.training.session import STATE_FILE, load_state, save_state
from trainables.trial import Trial


class TuneSession:
    """`earlier`: the unit's Tune trial folder of the stage's experiment (tune/<unit>/). A Tune trial that starts
    without a checkpoint of its own (a stage run afresh: a new grouping, or a result file found damaged) resumes
    from the newest checkpoint an earlier experiment left there: the same unit id means the same trials."""

    def __init__(self, earlier: str | None = None):
        self.earlier = earlier

    def restore(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return _newest_earlier(self.earlier) if self.earlier else None
        with checkpoint.as_directory() as folder:
            return load_state(folder)

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        if state is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_state(state, folder)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _newest_earlier(trial_dir: str) -> dict[str, Any] | None:
    """The state of the newest readable checkpoint under `trial_dir` (a path or URI), or None."""
    fs, folder = storage.resolve(trial_dir)
    try:
        found = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        names = [f"{i.path}/{STATE_FILE}" for i in found if i.base_name.startswith("checkpoint_")]
        states = [i for i in fs.get_file_info(names) if i.type == pafs.FileType.File]
    except storage.FAILURES:
        return None
    for info in sorted(states, key=lambda i: i.mtime_ns or 0, reverse=True):
        try:
            with tune.Checkpoint(info.path.rsplit("/", 1)[0], filesystem=fs).as_directory() as where:
                return load_state(where)
        except Exception:  # a checkpoint cut short (torch raises several kinds): try the one before
            continue
    return None


def _earlier_dir(sweep_dir: str, stage: str, unit: str) -> str:
    return paths.join(paths.tune_dir(sweep_dir, stage), unit)


def trainable(config: dict[str, Any]) -> None:
    """Tune function trainable: `config["trial"]` is a `Trial.to_dict()`, or `config["pack"]` names a pack of
    trials (trainables/packing/) to read from the sweep folder. A multi-worker trial launches Ray Train workers
    from here; a single-worker one or a pack trains in this process."""
    config = config.get("unit", config)  # sweeps started before packing carry the trial at the top level
    if "pack" in config:
        from trainables.packing import pack
        from trainables.packing.loop import run_pack

        unit = pack.load(config["pack"]["sweep_dir"], config["pack"]["pack_id"])
        run_pack(unit, TuneSession(_earlier_dir(unit.sweep_dir, unit.members[0].stage, unit.pack_id)))
        return
    trial = Trial.from_dict(config["trial"])
    if trial.workers > 1:
        from trainables.training.train_adapter import run_distributed

        run_distributed(trial, trial.worker_max_failures)
    else:
        run_trial(trial, TuneSession(_earlier_dir(trial.sweep_dir, trial.stage, trial.trial_id)))
