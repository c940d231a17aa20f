"""One trial, fully resolved: what sweep/ hands to a trainable and what every result row is keyed by."""

from __future__ import annotations

import dataclasses
from typing import Any

# results columns of a dependent stage's trials (their `init`); null in first-stage rows
STAGE_COLUMNS = {"variant": "str", "time_multiplier": "float", "rewind_step": "int", "sparsity_aware_init": "bool"}


@dataclasses.dataclass(frozen=True)
class Trial:
    sweep: str
    sweep_dir: str  # absolute path or URI; results go under it (trainables.records.paths)
    trial_id: str  # config_hash + seed: unique within a sweep
    config_hash: str  # hash of the canonical non-default config, seed excluded
    task: str
    task_options: dict[str, Any]  # every field, defaults included
    method: str
    method_config: dict[str, Any]
    target_sparsity: float | None  # None: the method learns its sparsity (no target)
    seed: int
    stage: str = "main"
    parent_trial_id: str | None = None
    # (name, arrow type) of every hyper-parameter column of the sweep, so all files share one schema
    hp_columns: tuple[tuple[str, str], ...] = ()
    threads: int = 1  # torch intra-op threads for this trial
    engine: str = "torch"  # "torch" | "deepspeed" (trainables/engine.py)
    workers: int = 1  # > 1: data-parallel Ray Train workers (trainables/train_adapter.py)
    gpus_per_worker: float = 0.0
    zero_stage: int = 0
    worker_max_failures: int = 0  # multi-worker trials: Ray Train's own restarts of the worker group (-1: always)
    # a dependent stage's trial: how it starts from its parent (trainables/reinit.py); empty in the first stage
    init: dict[str, Any] = dataclasses.field(default_factory=dict)
    # the spec's `nnz`: weights to keep; target_sparsity is then 1 - target_nnz / the model's prunable weights
    target_nnz: int | None = None
    keep_steps: tuple[int, ...] = ()  # steps after which the weights are kept for a later stage (late rewinding)
    # planned from a stage's results, not from the spec alone (phase 2 of a search whose structure phase 1
    # chooses: sweep/search.py); such trials are outside the plan hash that ties a sweep folder to its spec
    resolved: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trial:
        d = dict(d)
        d["hp_columns"] = tuple(tuple(c) for c in d.get("hp_columns", ()))
        d["keep_steps"] = tuple(d.get("keep_steps", ()))
        return cls(**d)

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return {**self.task_options, **self.method_config, **{k: self.init[k] for k in STAGE_COLUMNS if k in self.init}}
