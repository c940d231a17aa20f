"""Multi-worker trials: the Tune function trainable launches a Ray Train `TorchTrainer` (the Ray Train V2
pattern) whose workers run the same loop, data-parallel. The only place that calls Ray Train.

Every rank saves its own state file in each checkpoint (ZeRO-1/2 shard optimizer state by rank); Ray merges the
workers' folders into one checkpoint. Only rank 0 writes result rows. Re-running the same trial resumes from the
Train run's latest checkpoint (V2 resumes a run of the same name and storage by itself).
"""

from __future__ import annotations

import tempfile
from typing import Any

import ray.train
import torch
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from trainables.records import paths
from trainables.training.loop import run_trial
from trainables.training.session import load_state, save_state
from trainables.trial import Trial


def _state_file(rank: int) -> str:
    return f"state-rank{rank}.pt"


class TrainSession:
    def __init__(self):
        self.rank = ray.train.get_context().get_world_rank()

    def restore(self) -> dict[str, Any] | None:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return load_state(folder, _state_file(self.rank))

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        if state is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_state(state, folder, _state_file(self.rank))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _worker(config: dict[str, Any]) -> None:
    trial = Trial.from_dict(config["trial"])
    device = torch.device("cuda", ray.train.get_context().get_local_rank()) if torch.cuda.is_available() else None
    run_trial(trial, TrainSession(), device)


def run_distributed(trial: Trial, max_failures: int = 0) -> None:
    """Train `trial` on `trial.workers` Ray Train workers; metrics and checkpoints are forwarded to Tune."""
    use_gpu = trial.gpus_per_worker > 0
    resources = {"CPU": trial.threads, **({"GPU": trial.gpus_per_worker} if use_gpu else {})}
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"trial": trial.to_dict()},
        scaling_config=ray.train.ScalingConfig(
            num_workers=trial.workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        run_config=ray.train.RunConfig(
            name=trial.trial_id,
            storage_path=paths.train_dir(trial.sweep_dir),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()],
        ),
    )
    trainer.fit()
