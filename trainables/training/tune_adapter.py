"""The only place trainables/ touches Ray Tune: a function trainable and its Session."""

from __future__ import annotations

import tempfile
from typing import Any

from ray import tune

from trainables.training.loop import run_trial
from trainables.training.session import load_state, save_state
from trainables.trial import Trial


class TuneSession:
    def restore(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return load_state(folder)

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        if state is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_state(state, folder)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def trainable(config: dict[str, Any]) -> None:
    """Tune function trainable: `config["trial"]` is a `Trial.to_dict()`, or `config["pack"]` names a pack of
    trials (trainables/packing/) to read from the sweep folder. A multi-worker trial launches Ray Train workers
    from here; a single-worker one or a pack trains in this process."""
    config = config.get("unit", config)  # sweeps started before packing carry the trial at the top level
    if "pack" in config:
        from trainables.packing import pack
        from trainables.packing.loop import run_pack

        run_pack(pack.load(config["pack"]["sweep_dir"], config["pack"]["pack_id"]), TuneSession())
        return
    trial = Trial.from_dict(config["trial"])
    if trial.workers > 1:
        from trainables.training.train_adapter import run_distributed

        run_distributed(trial, trial.worker_max_failures)
    else:
        run_trial(trial, TuneSession())
