"""Tune callbacks of a sweep. Picklable: Tune stores them with the experiment and restores them."""

from __future__ import annotations

import time

from ray import tune

from trainables.records import results
from trainables.trial import Trial


def _target(target: float | None) -> str:
    return "-" if target is None else f"{target:g}"


def _what(cfg: dict) -> str:
    """The method, or for a dependent stage's trial its variant (lottery, scratch_e, ...)."""
    init = cfg.get("init") or {}
    if not init:
        return cfg["method"]
    return init["variant"] + (f" @{init['rewind_step']}" if init.get("rewind_step") else "")


class Progress(tune.Callback):
    """One line per finished trial (Tune's own tables are turned off)."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.enabled, self.started = total, enabled, time.time()

    def say(self, line: str) -> None:
        if self.enabled:
            print(line, flush=True)

    def _line(self, trials, trial, word: str) -> str:
        finished = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")} | {trial.trial_id}
        cfg, result = trial.config["trial"], trial.last_result or {}
        score = (
            f"{result['metric']} {result['value']:.4f}  sparsity {result['sparsity']:.4f}" if "value" in result else ""
        )
        count = f"{len(finished):>{len(str(self.total))}}/{self.total} {time.time() - self.started:6.0f}s"
        target = _target(cfg["target_sparsity"])
        return f"[{count}] {word:<8} {_what(cfg):<19} target {target:<5} seed {cfg['seed']}  {score}"

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        if result.get("status") == "diverged":  # a result, not a failure: never retried
            self.say(self._line(trials, trial, "DIVERGED") + f"loss not finite at step {result.get('step')}")
        else:
            self.say(self._line(trials, trial, "done"))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.say(self._line(trials, trial, "FAILED") + f"  (see {trial.local_path})")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.say(f"  retrying {trial.config['trial']['trial_id']} from its last checkpoint")


class RecordFailures(tune.Callback):
    """A trial that errored out for good gets a `failed` row, so the results show it; a later successful
    resume of the same trial replaces the row."""

    def on_trial_error(self, iteration, trials, trial, **info):
        cfg = Trial.from_dict(trial.config["trial"])
        result = trial.last_result or {}
        results.write_rows(
            cfg,
            "trials",
            [
                {
                    "source": "sweep",
                    "status": "failed",
                    "metric": result.get("metric"),
                    "primary": True,
                    "value": float("nan"),
                    "sparsity": result.get("sparsity"),
                    "steps": result.get("step", 0),
                    "wall_time_s": result.get("time_total_s"),
                }
            ],
        )
