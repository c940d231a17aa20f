"""The training loop shared by every task and method. It never learns a method's name."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

import methods
from trainables import results, tasks
from trainables.session import Session
from trainables.trial import Trial


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build(trial: Trial, device: torch.device):
    task_cls = tasks.get(trial.task)
    task = task_cls(task_cls.Options(**trial.task_options), trial.seed, device)
    torch.manual_seed(trial.seed)  # model init
    model = task.build_model()
    method = methods.get(trial.method)
    sparsifier = method(method.Config(**trial.method_config), trial.target_sparsity, trial.seed)
    sparsifier.prepare(model)
    sparsifier.apply_masks()
    return task, model, sparsifier, task.build_optimizer(model)


def run_trial(trial: Trial, session: Session, device: torch.device | None = None) -> dict[str, Any]:
    """Train one trial to the end (resuming from the session's checkpoint if any); return its trial row."""
    torch.set_num_threads(trial.threads)
    task, model, sparsifier, optimizer = build(trial, device or pick_device())
    state = session.restore() or {}
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        sparsifier.load_state_dict(state["sparsifier"])
        torch.set_rng_state(state["rng"])
    step, evals = state.get("step", 0), state.get("evals", [])
    resumed_from = step
    elapsed, started = state.get("wall_time_s", 0.0), time.perf_counter()

    status = "completed"
    while step < task.total_steps:
        step += 1
        lr = task.learning_rate(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = task.loss(model, task.batch(step)) + sparsifier.penalty(step)
        if not math.isfinite(loss.item()):
            status = "diverged"
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sparsifier.after_step(step)

        if step % task.eval_every == 0 or step == task.total_steps:
            wall = elapsed + time.perf_counter() - started
            evals.append(_eval_row(task, model, sparsifier, step, loss.item(), lr, wall))
            results.write_rows(trial, "evals", evals)
            done = step == task.total_steps
            if done:
                _write_final(trial, task, sparsifier, evals, status, step, wall)
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "sparsifier": sparsifier.state_dict(), "rng": torch.get_rng_state(),
                     "step": step, "evals": evals, "wall_time_s": wall}
            session.report({**_metrics(evals[-1], done), "resumed_from_step": resumed_from}, state)

    if status == "diverged":
        wall = elapsed + time.perf_counter() - started
        row = _write_final(trial, task, sparsifier, evals, status, step, wall)
        session.report({"step": step, "status": status, "done": True}, None)
        return row
    return _trial_row(task, sparsifier, evals, status, step, evals[-1]["wall_time_s"])


def _eval_row(task, model, sparsifier, step, loss, lr, wall) -> dict[str, Any]:
    return {"step": step, "metric": task.metric, "value": task.evaluate(model), "sparsity": sparsifier.sparsity(),
            "loss": loss, "current_lr": lr, "wall_time_s": wall}


def _metrics(row: dict[str, Any], done: bool) -> dict[str, Any]:
    return {"step": row["step"], "metric": row["metric"], "value": row["value"], row["metric"]: row["value"],
            "sparsity": row["sparsity"], "loss": row["loss"], "done": done}


def _trial_row(task, sparsifier, evals, status, step, wall) -> dict[str, Any]:
    value = evals[-1]["value"] if evals and status == "completed" else float("nan")
    return {"source": "sweep", "status": status, "metric": task.metric, "mode": task.mode, "value": value,
            "sparsity": sparsifier.sparsity(), "steps": step, "wall_time_s": wall}


def _write_final(trial, task, sparsifier, evals, status, step, wall) -> dict[str, Any]:
    row = _trial_row(task, sparsifier, evals, status, step, wall)
    layers = [{"layer": name, "shape": "x".join(map(str, mask.shape)), "numel": mask.numel(),
               "nonzero": int(mask.sum().item()), "sparsity": 1.0 - mask.sum().item() / mask.numel()}
              for name, mask in sparsifier.masks().items()]
    results.write_rows(trial, "layers", layers)
    results.write_rows(trial, "trials", [row])
    return row
