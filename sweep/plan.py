"""Spec -> the list of trials, each with its run identity.

Run identity (OpenLTH's rule): config_hash is the md5 of the canonical string of the *non-default* fields of
the task options and method options, plus task, method and target sparsity. The seed sits beside it in the
trial id. So adding an option whose default changes nothing never changes an existing id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from typing import Any, Literal

import methods
from sweep.spec import Spec, SpecError, grid
from trainables import tasks
from trainables.records import results
from trainables.trial import STAGE_COLUMNS, Trial


def canonical(config: Any) -> dict[str, Any]:
    """The fields of a config dataclass that differ from their defaults (required fields always count)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        )
        if value != default:
            out[f.name] = value
    return out


def config_hash(task: str, options: Any, method: str, method_config: Any, target: float, nnz: int | None = None) -> str:
    """`nnz` (a spec's `nnz` target) stands in for the target sparsity it implies."""
    parts = [f"task={task}", f"method={method}", f"target_sparsity={target!r}" if nnz is None else f"target_nnz={nnz}"]
    parts += [f"task.{k}={_stable(v)}" for k, v in sorted(canonical(options).items())]
    parts += [f"method.{k}={_stable(v)}" for k, v in sorted(canonical(method_config).items())]
    return hashlib.md5(",".join(parts).encode()).hexdigest()


def _stable(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_stable(v)}" for k, v in sorted(value.items())) + "}"
    return repr(value)


def trial_id(method: str, target: float | None, digest: str, seed: int, nnz: int | None = None) -> str:
    aim = f"nnz{nnz}" if nnz is not None else "learned" if target is None else f"{target:g}"
    return f"{method}-{aim}-{digest[:10]}-s{seed}"


def targets(spec: Spec, task_cls, options: Any, source: str) -> tuple[list[tuple[float, int | None]], int]:
    """(target sparsity, target nnz or None) per target of the spec for one task configuration, and how many
    `nnz` targets were skipped as at or above the configuration's weights (`nnz_beyond_model: skip`)."""
    if not spec.nnz:
        return [(s, None) for s in spec.sparsity], 0
    total = task_cls.prunable_weights_for(options)
    out, skipped = [], 0
    for nnz in spec.nnz:
        if nnz >= total:
            if spec.nnz_beyond_model == "skip":
                skipped += 1
                continue
            raise SpecError(
                f"{source}: nnz: {nnz} is not below the model's {total} weights ({_describe(options)}); "
                "lower it, or set nnz_beyond_model: skip"
            )
        out.append((1.0 - nnz / total, nnz))
    return out, skipped


def skipped_targets(spec: Spec) -> int:
    """How many (task configuration, nnz) pairs `nnz_beyond_model: skip` leaves out."""
    if not spec.nnz or spec.nnz_beyond_model != "skip":
        return 0
    task_cls = tasks.declared(spec.task)
    return sum(targets(spec, task_cls, task_cls.Options(**v), "")[1] for v in grid(spec.task_options, task_cls.Options))


def _describe(options: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in canonical(options).items()) or "default options"


def expand(spec: Spec, sweep_dir: str, source: str = "<spec>") -> list[Trial]:
    """All trials of a spec, stage by stage (the first stage, `main`, first), in a stable order. Raises SpecError
    for combinations that cannot run."""
    trials = _first_stage(spec, sweep_dir, source)
    by_stage = {"main": trials}
    for name, stage in spec.stages.items():
        by_stage[name] = _children(spec, name, stage, by_stage[stage.parent], source)
    keep: dict[str, set[int]] = {}
    for name, stage in spec.stages.items():
        if "lottery" in stage.variants:
            for child in by_stage[name]:
                if child.init["rewind_step"]:
                    keep.setdefault(child.parent_trial_id, set()).add(child.init["rewind_step"])
    every = [t for stage in by_stage.values() for t in stage]
    return [
        dataclasses.replace(t, keep_steps=tuple(sorted(keep[t.trial_id]))) if t.trial_id in keep else t for t in every
    ]


def stage_of(trials: list[Trial]) -> dict[str, list[Trial]]:
    """The trials by stage, in the order the stages run."""
    out: dict[str, list[Trial]] = {}
    for t in trials:
        out.setdefault(t.stage, []).append(t)
    return out


def _children(spec: Spec, name: str, stage, parents: list[Trial], source: str) -> list[Trial]:
    """One trial per (parent x variant x rewind step): the parent's task, its masks fixed, started as the variant
    says (trainables/training/reinit.py). Its config hash is the parent's plus the variant, so seeds group as usual."""
    from trainables.training.variants import VARIANTS

    task_cls = tasks.declared(spec.task)
    wanted = set(stage.methods) or {t.method for t in parents if t.method != "dense"}
    children = []
    for parent in (t for t in parents if t.method in wanted):
        parent_options = task_cls.Options(**parent.task_options)
        total = task_cls.total_steps_for(parent_options)
        for variant in stage.variants:
            weights, timed, aware = VARIANTS[variant]
            for rewind in stage.rewind_step if weights == "parent" else [0]:
                if rewind >= total:
                    raise SpecError(
                        f"{source}: stages.{name}.rewind_step: {rewind} is not before the end of the parents' "
                        f"training ({total} steps)"
                    )
                factor = stage.time_multiplier if timed else 1.0
                try:
                    options = task_cls.lengthened(parent_options, factor) if factor != 1.0 else parent_options
                except ValueError as e:
                    raise SpecError(f"{source}: stages.{name}.variants: {variant}: {e}") from None
                init = {
                    "variant": variant,
                    "weights": weights,
                    "rewind_step": rewind,
                    "sparsity_aware_init": aware,
                    "time_multiplier": factor,
                }
                digest = hashlib.md5(f"{parent.config_hash},stage={name},{_stable(init)}".encode()).hexdigest()
                child_id = trial_id(variant, parent.target_sparsity, digest, parent.seed)
                init["init_seed"] = int(hashlib.md5(child_id.encode()).hexdigest()[:8], 16)  # not the parent's
                children.append(
                    dataclasses.replace(
                        parent,
                        trial_id=child_id,
                        config_hash=digest,
                        task_options=dataclasses.asdict(options),
                        method="fixed_mask",
                        method_config={},
                        stage=name,
                        parent_trial_id=parent.trial_id,
                        init=init,
                        keep_steps=(),
                    )
                )
    return children


def _first_stage(spec: Spec, sweep_dir: str, source: str) -> list[Trial]:
    task_cls = tasks.declared(spec.task)
    hp_columns = hyperparameter_columns(spec, source)
    threads = max(1, int(spec.resources.cpus_per_worker))
    trials: list[Trial] = []
    for task_values in grid(spec.task_options, task_cls.Options):
        options = _construct(task_cls.Options, task_values, "task_options", source)
        total = task_cls.total_steps_for(options)
        aimed, _ = targets(spec, task_cls, options, source)
        options_dict = dataclasses.asdict(options)  # once per grid point: shared (read-only) by its trials
        for name, method_values in spec.methods.items():
            method = methods.declared(name)
            grids = method_values if isinstance(method_values, list) else [method_values]
            for values in [combo for g in grids for combo in grid(g, method.Config)]:
                config = _construct(method.Config, values, f"methods.{name}", source)
                try:
                    config.check_steps(total)
                except ValueError as e:
                    raise SpecError(f"{source}: methods.{name}: {e}") from None
                config_dict = dataclasses.asdict(config)
                aims = aimed if method.targets_sparsity else [(None if method.learns_sparsity else 0.0, None)]
                for target, nnz in aims:
                    digest = config_hash(spec.task, options, name, config, target, nnz)
                    for seed in spec.seeds:
                        trials.append(
                            Trial(
                                sweep=spec.name,
                                sweep_dir=sweep_dir,
                                trial_id=trial_id(name, target, digest, seed, nnz),
                                config_hash=digest,
                                task=spec.task,
                                task_options=options_dict,
                                method=name,
                                method_config=config_dict,
                                target_sparsity=target,
                                target_nnz=nnz,
                                seed=seed,
                                hp_columns=hp_columns,
                                threads=threads,
                                engine=spec.resources.engine,
                                zero_stage=spec.resources.zero_stage,
                                workers=spec.resources.workers,
                                gpus_per_worker=spec.resources.gpus_per_worker,
                                worker_max_failures=spec.failure.worker_max_failures,
                            )
                        )
    seen: set[str] = set()
    for t in trials:
        if t.trial_id in seen:
            raise SpecError(f"{source}: methods: the same configuration is listed twice ({t.trial_id})")
        seen.add(t.trial_id)
    return trials


def _construct(cls: type, values: dict[str, Any], where: str, source: str) -> Any:
    try:
        return cls(**values)
    except ValueError as e:
        raise SpecError(f"{source}: {where}: {e}") from None


_ARROW_KIND = {int: "int", float: "float", str: "str", bool: "bool"}


def _kind(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return _ARROW_KIND[type(typing.get_args(tp)[0])]
    return _ARROW_KIND.get(tp, "str")


def hyperparameter_columns(spec: Spec, source: str = "<spec>") -> tuple[tuple[str, str], ...]:
    """One results column per option of the task and of every method in the spec (union, typed)."""
    task_cls = tasks.declared(spec.task)
    configs = [("task_options", task_cls.Options)] + [
        (f"methods.{m}", methods.declared(m).Config) for m in spec.methods
    ]
    columns: dict[str, str] = {}
    for m in spec.methods:
        columns.update(methods.declared(m).variant_columns)
    if spec.stages:
        configs.append(("stages", methods.declared("fixed_mask").Config))
        columns.update(STAGE_COLUMNS)
    for where, cls in configs:
        for name, tp in typing.get_type_hints(cls).items():
            kind = _kind(tp)
            if any(name in results.COLUMNS[t] for t in results.HP_TABLES):
                raise SpecError(f"{source}: {where}.{name}: this option's name is also a results column")
            if columns.setdefault(name, kind) != kind:
                raise SpecError(
                    f"{source}: {where}.{name}: its type ({kind}) clashes with another option's "
                    f"({columns[name]}) of the same name"
                )
    return tuple(columns.items())
