"""The training loop shared by every task and method. It never learns a method's name."""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any

import torch

import methods
from trainables import tasks
from trainables.records import artifacts, results
from trainables.training import engine as engines
from trainables.training import reinit, structure
from trainables.training.session import Session
from trainables.trial import Trial


def _rank() -> int:
    return tasks.world()[0]


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build(trial: Trial, device: torch.device, initial: dict[str, torch.Tensor] | None = None, fresh: bool = True):
    """Task, model, sparsifier and engine of a trial, as at step 0. `initial`, if given, receives a copy of the
    model's step-0 weights before any mask (the lottery ticket's starting point; after a method's pruning at
    initialisation, which may re-initialise them). `fresh=False` (a checkpoint will overwrite weights and masks)
    skips fetching a dependent stage's parent artifacts and pruning at initialisation."""
    task_cls = tasks.get(trial.task)
    task = task_cls(task_cls.Options(**trial.task_options), trial.seed, device)
    torch.manual_seed(trial.init.get("init_seed", trial.seed))  # model init (a dependent stage's own seed)
    model = task.build_model()
    fixed = reinit.start(trial, model) if fresh else None  # a dependent stage's trial: parent's masks and weights
    method = methods.get(trial.method)
    sparsifier = method(method.Config(**trial.method_config), trial.target_sparsity, trial.seed)
    sparsifier.prepare(model)
    if fresh:
        sparsifier.prune_at_init(model, init_context(task))
        model.zero_grad(set_to_none=True)
    if initial is not None:
        initial.update(artifacts.weights(model))
    if fixed is not None:
        sparsifier.set_masks(fixed)
    sparsifier.apply_masks()
    optimizer = task.build_optimizer(model, no_decay=sparsifier.own_parameters())
    config = engines.EngineConfig(trial.engine, trial.zero_stage, task.micro_batches)
    return task, model, sparsifier, engines.build(config, model, optimizer, task.micro_batch_size)


def _masked_params(sparsifier) -> list[tuple[torch.Tensor, torch.Tensor]]:
    masks = sparsifier.masks()
    return [(param, masks[name]) for name, param in sparsifier.params.items()]


def init_context(task) -> methods.InitContext:
    """What pruning at initialisation may use of an unpacked task: its batches, loss and step-1 recipe."""
    options = task.options
    return methods.InitContext(
        batch=task.batch,
        loss=task.loss,
        lr=[task.learning_rate(1)],
        momentum=[getattr(options, "momentum", 0.0)],
        weight_decay=[getattr(options, "weight_decay", 0.0)],
        stored_init=task.stored_init,
    )


@torch.no_grad()
def rewind(model: torch.nn.Module, initial: dict[str, torch.Tensor]) -> None:
    """Every parameter back to its step-0 value (a new round of IMP with rewinding); masks are applied after."""
    params = dict(model.named_parameters())
    for name, value in initial.items():
        params[name].copy_(value)


def run_trial(
    trial: Trial, session: Session, device: torch.device | None = None, max_steps: int | None = None, on_step=None
) -> dict[str, Any]:
    """Train one trial to the end (resuming from the session's checkpoint if any); return its trial row.

    `max_steps` stops early (the debug mode): the trial then ends with status `stopped` at that step.
    `on_step(step, loss, lr, sparsifier)` is called after every step.
    """
    done = _already_finished(trial) if max_steps is None else None
    if done is not None:
        metrics = {
            "step": done["steps"],
            "metric": done["metric"],
            "value": done["value"],
            done["metric"]: done["value"],
        }
        session.report({**metrics, "sparsity": done["sparsity"], "done": True, "already_finished": True}, None)
        return done
    torch.set_num_threads(trial.threads)
    state = session.restore() or {}
    initial: dict[str, torch.Tensor] = {}
    task, model, sparsifier, engine = build(trial, device or pick_device(), initial, fresh=not state)
    if state:
        engine.load_state_dict(state["engine"])
        sparsifier.load_state_dict(state["sparsifier"])
        torch.set_rng_state(state["rng"])
        initial = state.get("initial", {})
    elif _rank() == 0:
        artifacts.save_weights(trial.sweep_dir, trial.trial_id, 0, initial)
    step, evals = state.get("step", 0), state.get("evals", [])
    resumed_from = step
    elapsed, started = state.get("wall_time_s", 0.0), time.perf_counter()

    status = "completed"
    # a method may train in rounds (IMP with rewinding): the task's training, restarted between them
    round_steps, rounds = task.total_steps, sparsifier.rounds
    total = round_steps * rounds
    end = total if max_steps is None else min(total, max_steps)
    while step < end:
        step += 1
        lr = task.learning_rate((step - 1) % round_steps + 1)  # each round's schedule starts anew
        engine.set_lr(lr)
        for micro in micro_batches(task.batch(step), task.micro_batches):
            loss = task.loss(engine, micro) + sparsifier.penalty(step)
            if not math.isfinite(loss.item()):
                break
            engine.backward(loss)
        if not math.isfinite(loss.item()):
            status = "diverged"
            break
        if sparsifier.before_update(step):
            engine.step()
        else:  # the method changed its masks instead (RigL): no update, and no momentum left on pruned weights
            engine.skip_step()
            engine.mask_momentum(_masked_params(sparsifier))
        sparsifier.after_step(step)
        if step % round_steps == 0 and step < total:
            sparsifier.end_round(step // round_steps, step)
            rewind(model, initial)
            sparsifier.apply_masks()
            engine.reset_optimizer()
        if step in trial.keep_steps and _rank() == 0:  # a later stage rewinds to these weights
            artifacts.save_weights(trial.sweep_dir, trial.trial_id, step, artifacts.weights(model, set(initial)))
        if on_step:
            on_step(step, loss.item(), lr, sparsifier)

        if step % task.eval_every == 0 or step == end:
            wall = elapsed + time.perf_counter() - started
            latest = _eval_rows(trial, task, model, sparsifier, step, loss.item(), lr, wall)
            evals += latest
            if _rank() == 0:
                results.write_rows(trial, "evals", evals)
            done = step == end
            if done:
                status = status if step == total else "stopped"
                _write_final(trial, task, model, sparsifier, latest, status, step, wall)
            state = {
                "engine": engine.state_dict(),
                "sparsifier": sparsifier.state_dict(),
                "rng": torch.get_rng_state(),
                "step": step,
                "evals": evals,
                "wall_time_s": wall,
                **({"initial": initial} if rounds > 1 else {}),
            }
            others = {r["metric"]: r["value"] for r in latest[1:] if r["config_hash"] == latest[0]["config_hash"]}
            session.report(
                {**others, **_metrics(latest[0], done), "resumed_from_step": resumed_from, "steps_total": end}, state
            )

    if status == "diverged":
        wall = elapsed + time.perf_counter() - started
        rows = _write_final(trial, task, model, sparsifier, [], status, step, wall)
        session.report({"step": step, "status": status, "done": True}, None)
        return rows[0]
    last = [row for row in evals if row["step"] == step]
    if state and resumed_from == end:  # resumed from the checkpoint it ended with: its rows again (a file was lost)
        status = "completed" if step == total else "stopped"
        if _rank() == 0:
            results.write_rows(trial, "evals", evals)
        _write_final(trial, task, model, sparsifier, last, status, step, state["wall_time_s"])
        session.report({**_metrics(last[0], True), "resumed_from_step": resumed_from, "steps_total": end}, state)
    return _trial_rows(trial, task, model, sparsifier, last, status, step, last[0]["wall_time_s"])[0]


def _already_finished(trial: Trial) -> dict[str, Any] | None:
    """The trial's final row if its results say it finished (completed or diverged), else None.

    Ray Tune snapshots its experiment state every few seconds; a driver killed between a trial's end and the
    next snapshot restores that trial as unfinished, with an older checkpoint or none. The results are the
    record: a trial that wrote its final rows is not trained again."""
    rows = results.read_rows(trial, "trials")
    if not rows or any(r["status"] not in results.FINAL for r in rows):
        return None
    primary = [r for r in rows if r.get("primary") in (True, None)]
    return {**(primary or rows)[0], "wall_time_s": rows[0]["wall_time_s"]}


def micro_batches(batch, n: int):
    """Split a batch (a tensor or a tuple of tensors) into n micro-batches along the first dimension."""
    if n == 1:
        return [batch]
    if isinstance(batch, torch.Tensor):
        return list(batch.chunk(n))
    return list(zip(*(t.chunk(n) for t in batch)))


def variant_hash(config_hash: str, variant: dict[str, Any]) -> str:
    """Each evaluation variant is its own configuration for analysis (e.g. each VD threshold)."""
    if not variant:
        return config_hash
    return hashlib.md5(f"{config_hash},{json.dumps(variant, sort_keys=True)}".encode()).hexdigest()


def _variants(trial, sparsifier):
    for variant in sparsifier.eval_variants():
        sparsifier.use_variant(variant)
        yield variant, {**variant, "config_hash": variant_hash(trial.config_hash, variant)}
    sparsifier.use_variant(sparsifier.eval_variants()[0])


def evaluate_metrics(task, model) -> dict[str, float]:
    """The task's metrics by name, its primary `metric` first."""
    value = task.evaluate(model)
    if not isinstance(value, dict):
        return {task.metric: value}
    if task.metric not in value:
        raise KeyError(f"task {task.name} evaluated {sorted(value)} but not its metric {task.metric!r}")
    return {task.metric: value[task.metric], **{k: v for k, v in value.items() if k != task.metric}}


def _metric_fields(task, name: str) -> dict[str, Any]:
    return {"metric": name, "primary": name == task.metric, "metric_detail": task.metric_details().get(name)}


def _eval_rows(trial, task, model, sparsifier, step, loss, lr, wall) -> list[dict[str, Any]]:
    """One row per evaluation variant and metric: the first variant's primary metric first."""
    rows = []
    for _, keys in _variants(trial, sparsifier):
        counts = _counts(model, sparsifier)
        for name, value in evaluate_metrics(task, model).items():
            rows.append(
                {
                    **keys,
                    **_metric_fields(task, name),
                    "step": step,
                    "value": value,
                    "sparsity": sparsifier.sparsity(),
                    "nnz_weights": counts["nnz_weights"],
                    "nnz_model": counts["nnz_model"],
                    "loss": loss,
                    "current_lr": lr,
                    "wall_time_s": wall,
                }
            )
    return rows


def _metrics(row: dict[str, Any], done: bool) -> dict[str, Any]:
    return {
        "step": row["step"],
        "metric": row["metric"],
        "value": row["value"],
        row["metric"]: row["value"],
        "sparsity": row["sparsity"],
        "loss": row["loss"],
        "done": done,
    }


def _counts(model, sparsifier) -> dict[str, Any]:
    """The trial's nonzero counts and, for a chain of linear layers, its connectivity (training/structure.py),
    on the masks of the current evaluation variant; other models: kept weights, and None for the rest."""
    masks = sparsifier.masks()
    measured = structure.measure(_masked(model, masks)) if structure.chain(model) is not None else None
    if measured is None:
        kept = sum(int(m.sum().item()) for m in masks.values())
        return {**dict.fromkeys(structure.TRIAL_COLUMNS), "nnz_weights": kept, "layers": None}
    return measured[0]


def _masked(model, masks):
    """The model as its current variant's masks see it: a chain's weights are plain, so a copy suffices."""
    if all(torch.equal(p != 0, p.mul(masks[n]) != 0) for n, p in methods.prunable_parameters(model).items()):
        return model
    import copy

    masked = copy.deepcopy(model)
    with torch.no_grad():
        for name, param in methods.prunable_parameters(masked).items():
            param.mul_(masks[name])
    return masked


def _trial_rows(trial, task, model, sparsifier, last_evals, status, step, wall) -> list[dict[str, Any]]:
    """One row per evaluation variant and metric, from the final evaluation (`last_evals`, empty if it never came)."""
    final = {(r["config_hash"], r["metric"]): r["value"] for r in last_evals if status != "diverged"}
    names = list(dict.fromkeys(r["metric"] for r in last_evals)) or [task.metric]
    rows = []
    for _, keys in _variants(trial, sparsifier):
        counts = {k: v for k, v in _counts(model, sparsifier).items() if k != "layers"}
        for name in names:
            rows.append(
                {
                    **keys,
                    **_metric_fields(task, name),
                    "source": "sweep",
                    "status": status,
                    "mode": task.mode,
                    "value": final.get((keys["config_hash"], name), float("nan")),
                    "sparsity": sparsifier.sparsity(),
                    **counts,
                    "steps": step,
                    "wall_time_s": wall,
                }
            )
    return rows


def layer_rows(masks: dict[str, torch.Tensor], layers: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """One `layers` row per prunable tensor; `layers` (structure.measure's, or None) adds counts and connectivity."""
    rows = []
    for i, (name, mask) in enumerate(masks.items()):
        extra = layers[i] if layers is not None else {**dict.fromkeys(structure.LAYER_COLUMNS)}
        if layers is None:
            extra["nnz_weights"] = int(mask.sum().item())
        rows.append(
            {
                "layer": name,
                "shape": "x".join(map(str, mask.shape)),
                "numel": mask.numel(),
                "nonzero": int(mask.sum().item()),
                "sparsity": 1.0 - mask.sum().item() / mask.numel(),
                **extra,
            }
        )
    return rows


def _write_final(trial, task, model, sparsifier, last_evals, status, step, wall) -> list[dict[str, Any]]:
    rows = _trial_rows(trial, task, model, sparsifier, last_evals, status, step, wall)
    layers = []
    for _, keys in _variants(trial, sparsifier):
        measured = _counts(model, sparsifier)["layers"]
        layers += [{"config_hash": keys["config_hash"], **r} for r in layer_rows(sparsifier.masks(), measured)]
    if _rank() == 0:
        if status != "diverged":  # a later stage's mask source; written before the rows that say "finished"
            masks = {name: mask.detach().cpu().clone() for name, mask in sparsifier.masks().items()}
            artifacts.save(trial.sweep_dir, trial.trial_id, artifacts.MASKS, masks)
        results.write_rows(trial, "layers", layers)
        results.write_rows(trial, "trials", rows)
    return rows
