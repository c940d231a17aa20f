"""Tune callbacks of a sweep. Picklable: Tune stores them with the experiment and restores them."""

from __future__ import annotations

import sys
import time

import tqdm
from ray import tune

from sweep.packing import unit_name, unit_of, unit_size
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
    """A live count of a stage's trials (a pack's members one by one): finished, running, failed, diverged, the
    rate and the ETA (tqdm's). On a terminal it redraws in place on stderr; in a log (a Ray job, CI) the same line
    is printed every LOG_EVERY seconds. Failures, retries and divergences get a line each; finishing does not."""

    LOG_EVERY = 30.0

    def __init__(self, total: int, enabled: bool = True, already: int = 0):
        self.total, self.enabled, self.started, self.already = total, enabled, time.time(), already
        self.units: dict[str, dict] = {}  # Tune trial id -> size, state, completed, diverged, progress
        self._bar, self._logged = None, 0.0

    def __getstate__(self):  # Tune pickles its callbacks with the experiment; a live bar is not state
        return {**self.__dict__, "_bar": None}

    def __setstate__(self, state):  # an experiment pickled by an older version restores with what it lacks
        self.__dict__.update({"already": 0, "units": {}, "_bar": None, "_logged": 0.0, **state})

    def say(self, line: str) -> None:
        if self.enabled:
            if self._bar is not None:
                self._bar.clear()
            print(line, flush=True)

    def _unit(self, trial) -> dict:
        if trial.trial_id not in self.units:
            size = unit_size(trial.config)
            self.units[trial.trial_id] = {"size": size, "state": "running", "completed": 0, "diverged": 0, "done": 0.0}
        return self.units[trial.trial_id]

    def counts(self) -> dict[str, float]:
        out = {"finished": self.already, "running": 0, "failed": 0, "diverged": 0, "progress": float(self.already)}
        for u in self.units.values():
            ended = u["completed"] + u["diverged"]
            out["finished"] += u["completed"]
            out["diverged"] += u["diverged"]
            if u["state"] == "failed":
                out["failed"] += u["size"] - ended
            elif u["state"] == "running":
                out["running"] += u["size"] - ended
            out["progress"] += ended + (u["size"] - ended) * (u["done"] if u["state"] == "running" else 1.0)
        return out

    @staticmethod
    def _postfix(c: dict[str, float]) -> str:
        return f"finished {c['finished']}, running {c['running']}, failed {c['failed']}, diverged {c['diverged']}"

    def line(self) -> str:
        c = self.counts()
        done = int(min(c["progress"], self.total))
        return tqdm.tqdm.format_meter(
            done, self.total, time.time() - self.started, unit="trial", postfix=self._postfix(c)
        )

    def _update(self, final: bool = False) -> None:
        if not self.enabled:
            return
        if sys.stderr.isatty():
            if self._bar is None:
                self._bar = tqdm.tqdm(total=self.total, unit="trial", dynamic_ncols=True, leave=True)
            c = self.counts()
            self._bar.n = int(min(c["progress"], self.total))
            self._bar.set_postfix_str(self._postfix(c))
        elif final or time.time() - self._logged >= self.LOG_EVERY:
            line = self.line()
            if final and line == getattr(self, "_last", None):
                return  # the count did not change since it was last printed
            self._logged, self._last = time.time(), line
            print(line, flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._unit(trial)["state"] = "running"
        self._update()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        unit = self._unit(trial)
        unit["completed"], unit["diverged"] = result.get("completed", 0), result.get("diverged", 0)
        if result.get("steps_total"):
            unit["done"] = min(1.0, result["step"] / result["steps_total"])
        self._update()

    def on_trial_complete(self, iteration, trials, trial, **info):
        unit, result = self._unit(trial), trial.last_result or {}
        unit["state"] = "ended"
        if "members" in result:  # a pack
            unit["completed"], unit["diverged"] = result["completed"] + result.get("stopped", 0), result["diverged"]
            if result["diverged"]:
                self.say(f"  {result['diverged']} of the {result['members']} trials of {trial.trial_id} diverged")
        elif result.get("status") == "diverged":  # a result, not a failure: never retried
            unit["diverged"] = 1
            self.say(self._single(trial, "DIVERGED") + f"loss not finite at step {result.get('step')}")
        else:
            unit["completed"] = 1
        self._update()

    def _single(self, trial, word: str) -> str:
        unit, result = unit_of(trial.config), trial.last_result or {}
        if "pack" in unit:
            return f"{word:<8} {unit['pack']['pack_id']} ({unit['pack']['size']} trials)  "
        cfg = unit["trial"]
        score = (
            f"{result['metric']} {result['value']:.4f}  sparsity {result['sparsity']:.4f}" if "value" in result else ""
        )
        return f"{word:<8} {_what(cfg):<19} target {_target(cfg['target_sparsity']):<5} seed {cfg['seed']}  {score}"

    def on_trial_error(self, iteration, trials, trial, **info):
        self._unit(trial)["state"] = "failed"
        self.say(self._single(trial, "FAILED") + f"  (see {trial.local_path})")
        self._update()

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.say(f"  retrying {unit_name(trial.config)} from its last checkpoint")

    def close(self) -> None:
        """The last count (printed in a log, or the bar left on screen)."""
        self._update(final=True)
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class RecordFailures(tune.Callback):
    """A trial that errored out for good gets a `failed` row, so the results show it; a later successful
    resume of the same trial replaces the row. In a pack, every member that had not ended gets one."""

    def on_trial_error(self, iteration, trials, trial, **info):
        unit, result = unit_of(trial.config), trial.last_result or {}
        row = {
            "source": "sweep",
            "status": "failed",
            "metric": result.get("metric"),
            "primary": True,
            "value": float("nan"),
            "sparsity": result.get("sparsity"),
            "steps": result.get("step", 0),
            "wall_time_s": result.get("time_total_s"),
        }
        if "trial" in unit:
            results.write_rows(Trial.from_dict(unit["trial"]), "trials", [row])
            return
        from trainables.packing import pack as packs

        pack = packs.load(unit["pack"]["sweep_dir"], unit["pack"]["pack_id"])
        kept = [r for r in results.read_unit(pack.sweep_dir, pack.pack_id, "trials") if r["status"] in results.FINAL]
        ended = {r["trial_id"] for r in kept}
        failed = [(m, [{"config_hash": m.config_hash, **row}]) for m in pack.members if m.trial_id not in ended]
        by_id = {m.trial_id: m for m in pack.members}
        again = [(by_id[r["trial_id"]], [r]) for r in kept]
        results.write_unit(pack.sweep_dir, pack.pack_id, "trials", again + failed)
