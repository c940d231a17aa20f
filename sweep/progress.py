"""A one-line-per-trial progress display (Tune's own tables are turned off). Picklable: Tune stores it."""

from __future__ import annotations

import time

from ray import tune


class Progress(tune.Callback):
    def __init__(self, total: int, enabled: bool = True):
        self.total, self.enabled, self.started = total, enabled, time.time()

    def say(self, line: str) -> None:
        if self.enabled:
            print(line, flush=True)

    def _line(self, trials, trial, word: str) -> str:
        finished = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")} | {trial.trial_id}
        cfg, result = trial.config["trial"], trial.last_result or {}
        score = f"{result['metric']} {result['value']:.4f}  sparsity {result['sparsity']:.4f}" \
            if "value" in result else ""
        return (f"[{len(finished):>{len(str(self.total))}}/{self.total} {time.time() - self.started:6.0f}s] "
                f"{word:<8} {cfg['method']:<10} target {cfg['target_sparsity']:<5g} seed {cfg['seed']}  {score}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.say(self._line(trials, trial, "done"))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.say(self._line(trials, trial, "FAILED") + f"  (see {trial.local_path})")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.say(f"  retrying {trial.config['trial']['trial_id']} from its last checkpoint")
