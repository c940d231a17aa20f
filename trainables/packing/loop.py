"""The loop of a pack: K members trained as one stacked computation, each with the numbers it would have alone.

Step by step it is the unpacked loop (training/loop.py) with a member axis: one loss per member, summed so that
each member's gradient is its own; one optimizer update with per-member rates; the sparsifier's `after_step`.
A member whose loss is not finite ends `diverged` at that step, as it would alone, and is frozen from then on;
the others go on unchanged. Rows are written per pack (one file per table), state is checkpointed for all.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

import methods
from trainables import tasks
from trainables.packing.pack import Pack
from trainables.records import results
from trainables.training import structure
from trainables.training.session import Session

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def keep_heap() -> None:
    """Ask glibc to serve and keep the pack's MB-sized activation buffers in its heap. By default each one is a
    fresh mmap whose pages fault in again every step (in this project's VMs a page fault is slow: measured
    about 30 % of a packed step at width 16; bench/packing.py). No effect where glibc is not the allocator."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20)
        libc.mallopt(M_TRIM_THRESHOLD, 2**30)
    except (OSError, AttributeError):
        pass


def build(pack: Pack, device: torch.device, fresh: bool = True):
    """The pack's stacked task, model, sparsifier and optimizer, as at step 0 (after the method's pruning at
    initialisation, unless `fresh` is False: a checkpoint then sets weights and masks)."""
    members = pack.members
    task_cls = tasks.get(members[0].task)
    task = task_cls.packed([(task_cls.Options(**t.task_options), t.seed) for t in members], device)
    model = task.build_model([t.init.get("init_seed", t.seed) for t in members])
    method = methods.get(members[0].method)
    sparsifier = method.for_members([(method.Config(**t.method_config), t.target_sparsity, t.seed) for t in members])
    sparsifier.prepare(model)
    if fresh:
        sparsifier.prune_at_init(model, init_context(task))
        model.zero_grad(set_to_none=True)
    return task, model, sparsifier, task.build_optimizer(model)


def init_context(task) -> methods.InitContext:
    """What pruning at initialisation may use of a pack: every member's batches, losses and step-1 recipe."""
    return methods.InitContext(
        batch=task.batch,
        loss=task.loss,
        lr=task.learning_rate_values(1),
        momentum=[m.options.momentum for m in task.members],
        weight_decay=[m.options.weight_decay for m in task.members],
        stored_init=task.stored_init,
    )


def run_pack(
    pack: Pack, session: Session, device: torch.device | None = None, max_steps: int | None = None, on_step=None
) -> list[dict[str, Any]]:
    """Train every member of `pack` to the end (resuming from the session's checkpoint); return their primary
    trial rows. `on_step(step, losses, lrs, sparsifier)` is called after every step (tests, debugging)."""
    members = pack.members
    torch.set_num_threads(members[0].threads)
    keep_heap()
    state = session.restore() or {}
    if not state:
        state = _carried(pack)  # members whose rows already say they finished are not trained again
        if len(state["ended"]) == len(members):
            session.report({**_counts(pack, state["ended"]), "done": True, "already_finished": True}, None)
            return _primary(pack, state["ended"])
    task, model, sparsifier, optimizer = build(pack, device or torch.device("cpu"), fresh="model" not in state)
    rounds, round_steps = sparsifier.rounds, task.total_steps  # IMP with rewinding trains in rounds
    initial = {k: v.clone() for k, v in model.state_dict().items()} if rounds > 1 else {}
    sparsifier.apply_masks()
    if "model" in state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        sparsifier.load_state_dict(state["sparsifier"])
        torch.set_rng_state(state["rng"])
        initial = state.get("initial", initial)
    step, evals, ended = state.get("step", 0), state["evals"], state["ended"]
    active = torch.tensor([t.trial_id not in ended for t in members], device=model[0].weight.device)
    elapsed, started = state.get("wall_time_s", 0.0), time.perf_counter()
    total = round_steps * rounds
    end = total if max_steps is None else min(total, max_steps)
    ended_before = "model" in state and step == end  # restored from the checkpoint it ended with
    losses = torch.zeros(len(members))
    while step < end and bool(active.any()):
        step += 1
        lrs = task.learning_rates((step - 1) % round_steps + 1)  # each round's schedule starts anew
        losses = task.loss(model, task.batch(step)) + sparsifier.penalty(step)
        finite = torch.isfinite(losses.detach())
        if not bool(finite[active].all()):  # these members end here, before this step's update, as alone
            wall, kept = elapsed + time.perf_counter() - started, _nonzero(sparsifier, model)
            for k in (active & ~finite).nonzero().flatten().tolist():
                ended[members[k].trial_id] = _final(members[k], kept, k, None, "diverged", step, wall)
            active &= finite
        everyone = bool(active.all())
        (losses.sum() if everyone else torch.where(active, losses, 0.0).sum()).backward()
        take = sparsifier.before_update(step)
        if take is True:
            optimizer.step(lrs, None if everyone else active)
        else:  # some members' methods changed their masks instead (RigL): no update for them, no momentum left
            if take is False or not bool(take.any()):  # on their pruned weights
                optimizer.skip()
            else:
                optimizer.step(lrs, active & take)
            masks = sparsifier.masks()
            optimizer.mask_momentum([(param, masks[name]) for name, param in sparsifier.params.items()])
        sparsifier.after_step(step)
        if step % round_steps == 0 and step < total:
            sparsifier.end_round(step // round_steps, step)
            _rewind(model, initial, active)
            sparsifier.apply_masks()
            optimizer.reset()
        if on_step:
            on_step(step, losses.detach(), lrs, sparsifier)
        if step % task.eval_every == 0 or step == end:
            wall, kept = elapsed + time.perf_counter() - started, _nonzero(sparsifier, model)
            latest = _eval_rows(pack, task, model, kept, active, step, losses.detach(), wall)
            evals += [row for _, row in latest]
            if step == end:
                status = "completed" if step == total else "stopped"
                for k, row in latest:
                    ended[members[k].trial_id] = _final(members[k], kept, k, row, status, step, wall)
            _write(pack, evals, ended)
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "sparsifier": sparsifier.state_dict(),
                "rng": torch.get_rng_state(),
                "step": step,
                "evals": evals,
                "ended": ended,
                "wall_time_s": wall,
                **({"initial": initial} if rounds > 1 else {}),
            }
            session.report({**_counts(pack, ended), "step": step, "steps_total": end, "done": step == end}, state)
    if not bool(active.any()) and step < end:  # every member diverged: nothing left to train
        _write(pack, evals, ended)
        session.report({**_counts(pack, ended), "step": step, "done": True}, None)
    elif ended_before:  # resumed from the checkpoint it ended with: its rows again
        _write(pack, evals, ended)
        session.report({**_counts(pack, ended), "step": step, "steps_total": end, "done": True}, state)
    return _primary(pack, ended)


@torch.no_grad()
def _rewind(model: torch.nn.Module, initial: dict[str, torch.Tensor], active: torch.Tensor) -> None:
    """The members still training back to their step-0 weights (a new round); the ended ones stay as they are."""
    for name, value in model.state_dict().items():
        keep = active.view(-1, *([1] * (value.dim() - 1)))
        value.copy_(torch.where(keep, initial[name], value))


def _carried(pack: Pack) -> dict[str, Any]:
    """A fresh start's state: the rows of members that finished in an earlier run of this pack (its own files)."""
    rows = {table: results.read_unit(pack.sweep_dir, pack.pack_id, table) for table in ("trials", "layers", "evals")}
    done = {r["trial_id"] for r in rows["trials"] if r["status"] in results.FINAL}
    done -= {r["trial_id"] for r in rows["trials"] if r["status"] not in results.FINAL}
    done &= {t.trial_id for t in pack.members}
    ended: dict[str, dict[str, list]] = {tid: {"trials": [], "layers": []} for tid in done}
    for table in ("trials", "layers"):
        for row in rows[table]:
            if row["trial_id"] in ended:
                ended[row["trial_id"]][table].append(_tagged(row))
    return {"ended": ended, "evals": [_tagged(r) for r in rows["evals"] if r["trial_id"] in ended]}


def _tagged(row: dict[str, Any]) -> dict[str, Any]:
    """A row as read back, tagged with its trial like the rows this loop makes (`results.keyed` writes its key and
    hyper-parameter columns again, with the same values)."""
    return {**row, "_trial": row["trial_id"]}


def _nonzero(sparsifier, model) -> dict[str, Any]:
    """Every prunable tensor's one-member shape and kept weights per member (one reduction per tensor), and the
    members' nonzero counts and connectivity when the model is a chain of linear layers (training/structure.py)."""
    kept = {
        name: (sparsifier.member_shape(mask), sparsifier.member_rows(mask).sum(dim=1).tolist())
        for name, mask in sparsifier.masks().items()
    }
    return {"kept": kept, "measured": structure.measure(model, len(sparsifier.members))}


def _member_stats(counts: dict[str, Any], k: int) -> tuple[float, dict[str, Any], list[dict[str, Any]]]:
    """Member k's achieved sparsity, its trial-level counts and its layers rows, from `_nonzero`."""
    kept, measured = counts["kept"], counts["measured"]
    layers, nonzero_total, total = [], 0, 0
    for i, (name, (shape, per_member)) in enumerate(kept.items()):
        nonzero, numel = per_member[k], shape.numel()
        nonzero_total, total = nonzero_total + nonzero, total + numel
        extra = (
            measured[k]["layers"][i] if measured else {**dict.fromkeys(structure.LAYER_COLUMNS), "nnz_weights": nonzero}
        )
        layers.append(
            {
                "layer": name,
                "shape": "x".join(map(str, shape)),
                "numel": numel,
                "nonzero": nonzero,
                "sparsity": 1.0 - nonzero / numel,
                **extra,
            }
        )
    if measured:
        trial = {c: measured[k][c] for c in structure.TRIAL_COLUMNS}
    else:
        trial = {**dict.fromkeys(structure.TRIAL_COLUMNS), "nnz_weights": nonzero_total}
    return 1.0 - nonzero_total / total, trial, layers  # the unpacked Sparsifier.sparsity()'s arithmetic


def _metric_fields(task_cls) -> dict[str, Any]:
    return {"metric": task_cls.metric, "primary": True, "metric_detail": None}


def _eval_rows(pack, task, model, kept, active, step, losses, wall) -> list[tuple[int, dict[str, Any]]]:
    """(member index, its evaluation row) for every member still training."""
    task_cls = tasks.get(pack.members[0].task)
    values, rates = task.evaluate(model), task.learning_rate_values(step)
    rows = []
    for k in active.nonzero().flatten().tolist():
        trial = pack.members[k]
        sparsity, counts, _ = _member_stats(kept, k)
        rows.append(
            (
                k,
                {
                    "_trial": trial.trial_id,
                    "config_hash": trial.config_hash,
                    **_metric_fields(task_cls),
                    "step": step,
                    "value": values[k],
                    "sparsity": sparsity,
                    "nnz_weights": counts["nnz_weights"],
                    "nnz_model": counts["nnz_model"],
                    "loss": float(losses[k]),
                    "current_lr": rates[k],
                    "wall_time_s": wall,
                },
            )
        )
    return rows


def _final(trial, kept, k, last_eval, status, step, wall) -> dict[str, list[dict[str, Any]]]:
    """Member k's trials and layers rows as its unpacked run would write them at its end."""
    task_cls = tasks.get(trial.task)
    sparsity, counts, layers = _member_stats(kept, k)
    value = last_eval["value"] if last_eval is not None and status != "diverged" else math.nan
    row = {
        "_trial": trial.trial_id,
        "config_hash": trial.config_hash,
        **_metric_fields(task_cls),
        "source": "sweep",
        "status": status,
        "mode": task_cls.mode,
        "value": value,
        "sparsity": sparsity,
        **counts,
        "steps": step,
        "wall_time_s": wall,
    }
    return {
        "trials": [row],
        "layers": [{"_trial": trial.trial_id, "config_hash": trial.config_hash, **r} for r in layers],
    }


def _write(pack: Pack, evals: list[dict[str, Any]], ended: dict[str, dict[str, list]]) -> None:
    """The pack's files, whole: evaluations so far, then layers and trials rows of the members that ended (trials
    last: a member's trials rows are the record that it finished)."""
    by_id = {t.trial_id: t for t in pack.members}

    def parts(rows):
        grouped: dict[str, list] = {}
        for row in rows:
            grouped.setdefault(row["_trial"], []).append({k: v for k, v in row.items() if k != "_trial"})
        return [(by_id[tid], rs) for tid, rs in grouped.items()]

    tables = {"evals": evals}
    for table in ("layers", "trials"):
        tables[table] = [row for tid in by_id if tid in ended for row in ended[tid][table]]
    for table, rows in tables.items():
        if rows:
            results.write_unit(pack.sweep_dir, pack.pack_id, table, parts(rows))


def _counts(pack: Pack, ended: dict[str, Any]) -> dict[str, Any]:
    statuses = [rows["trials"][0]["status"] for rows in ended.values()]
    return {
        "members": len(pack.members),
        "completed": sum(s == "completed" for s in statuses),
        "diverged": sum(s == "diverged" for s in statuses),
        "stopped": sum(s == "stopped" for s in statuses),
    }


def _primary(pack: Pack, ended: dict[str, Any]) -> list[dict[str, Any]]:
    return [ended[t.trial_id]["trials"][0] for t in pack.members if t.trial_id in ended]
