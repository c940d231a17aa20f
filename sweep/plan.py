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
from sweep import search
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
    return _digest(
        task, _parts("task", canonical(options)), method, _parts("method", canonical(method_config)), target, nnz
    )


def _parts(prefix: str, changed: dict[str, Any]) -> list[str]:
    return [f"{prefix}.{k}={_stable(v)}" for k, v in sorted(changed.items())]


def _digest(task: str, task_parts: list[str], method: str, method_parts: list[str], target, nnz) -> str:
    parts = [f"task={task}", f"method={method}", f"target_sparsity={target!r}" if nnz is None else f"target_nnz={nnz}"]
    return hashlib.md5(",".join(parts + task_parts + method_parts).encode()).hexdigest()


def _defaults(cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls)}


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
    if spec.search is not None:
        by_stage[search.PHASE1] = search_structures(spec, sweep_dir, source)
        structure, resolved = phase2_structure(spec, sweep_dir)
        if structure is not None:
            by_stage[search.PHASE2] = search_masks(spec, sweep_dir, structure, resolved)
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


def phase2_structure(spec: Spec, sweep_dir: str) -> tuple[tuple[int, ...] | None, bool]:
    """The search's phase-2 structure as far as it is known (the spec's, or the one recorded when phase 2
    started), and whether it was resolved from phase 1's results."""
    if spec.search.structure:
        return tuple(spec.search.structure), False
    choice = search.recorded(sweep_dir) if sweep_dir else None
    if choice and choice.get("structure"):
        return tuple(choice["structure"]), True
    return None, False


def _trial_fields(spec: Spec, sweep_dir: str, source: str = "<spec>", **fields: Any) -> dict[str, Any]:
    """The Trial fields every trial of a spec shares (its sweep, task, columns and resources)."""
    res = spec.resources
    return dict(
        sweep=spec.name,
        sweep_dir=sweep_dir,
        task=spec.task,
        hp_columns=hyperparameter_columns(spec, source),
        threads=max(1, int(res.cpus_per_worker)),
        engine=res.engine,
        zero_stage=res.zero_stage,
        workers=res.workers,
        gpus_per_worker=res.gpus_per_worker,
        worker_max_failures=spec.failure.worker_max_failures,
        **fields,
    )


def _search_trials(spec, sweep_dir, stage, method, task_values, configs, resolved=False) -> list[Trial]:
    """One trial per (task configuration x (method config, kept weights) x seed) of a search stage."""
    task_cls = tasks.declared(spec.task)
    method_cls = methods.declared(method).Config
    defaults = _defaults(method_cls)
    base = _trial_fields(spec, sweep_dir, stage=stage, method=method, resolved=resolved)
    trials = []
    for values in grid(task_values, task_cls.Options):
        options = task_cls.Options(**values)
        total = task_cls.prunable_weights_for(options)
        options_dict, task_parts = dataclasses.asdict(options), _parts("task", canonical(options))
        for config, kept in configs:
            method_parts = _parts("method", {k: v for k, v in config.items() if v != defaults[k]})
            target = 1.0 - kept / total
            digest = _digest(spec.task, task_parts, method, method_parts, target, kept)
            full = {**defaults, **config}
            for seed in spec.search.seeds:
                trials.append(
                    Trial(
                        trial_id=trial_id(method, target, digest, seed, kept),
                        config_hash=digest,
                        task_options=options_dict,
                        method_config=full,
                        target_sparsity=target,
                        target_nnz=kept,
                        seed=seed,
                        **base,
                    )
                )
    return trials


def chain_io(spec: Spec) -> tuple[int, int]:
    """Inputs and outputs of the chain a spec's search masks."""
    task_cls = tasks.declared(spec.task)
    first = grid(spec.search.task_options, task_cls.Options)[0]
    chain = task_cls.chain_for(task_cls.Options(**first))
    return chain[0], chain[-1]


def search_structures(spec: Spec, sweep_dir: str, source: str = "<spec>") -> list[Trial]:
    """Phase 1: every structure of the search's grid, dense inside the wide model's top-left blocks."""
    s, (d_in, d_out) = spec.search, chain_io(spec)
    grid1 = search.structures(s.max_width, 3, d_in, d_out, s.below_params)
    configs = [(search.structure_config(st), search.dense_counts((d_in, *st, d_out))[0]) for st in grid1]
    return _search_trials(spec, sweep_dir, search.PHASE1, search.STRUCTURE_METHOD, s.task_options, configs)


def search_masks(spec: Spec, sweep_dir: str, structure: tuple[int, ...], resolved: bool = False) -> list[Trial]:
    """Phase 2: every eligible mask of the hidden layers inside `structure` (the caps applied), classifier dense."""
    s, (d_in, d_out) = spec.search, chain_io(spec)
    classifier = structure[-1] * d_out
    configs = [
        (search.mask_config(structure, combo), sum(nnz for nnz, _ in combo) + classifier)
        for combo in search.mask_combos(s, structure, d_in)
    ]
    task_values = {**s.phase2_task_options, **native_structure(s.phase2_task_options, structure)}
    return _search_trials(spec, sweep_dir, search.PHASE2, search.MASK_METHOD, task_values, configs, resolved)


def native_structure(task_values: dict, structure: tuple[int, ...]) -> dict:
    """Phase 2's model as the structure itself (d1, d2, d3) where that is the same computation as the masked
    width-16 model: with a stored init, a narrower layer starts from the stored width-16 init's top-left block
    (trainables/tasks/cubist.py), which is where the masked model's active block starts; outside that block the
    masked model's weights and biases are zero and stay zero (masked, no gradient, weight decay of zero), so it
    computes the same numbers up to float rounding, at the structure's cost instead of width 16's (issue 15: about
    a tenth of the slice). A drawn init keeps the masked width-16 model: its scale depends on the width (§3.1)."""
    init = task_values.get("init", "default")
    inits = init if isinstance(init, list) else [init]
    if not inits or "default" in inits:  # "default": drawn from the seed; any other init is stored
        return {}
    return {f"d{i + 1}": d for i, d in enumerate(structure)}


def phase2_size(spec: Spec, structure: tuple[int, ...]) -> int:
    """Phase 2's trials for `structure`, counted without planning them."""
    s, (d_in, _) = spec.search, chain_io(spec)
    task_cls = tasks.declared(spec.task)
    return search.mask_count(s, structure, d_in) * len(grid(s.phase2_task_options, task_cls.Options)) * len(s.seeds)


def _first_stage(spec: Spec, sweep_dir: str, source: str) -> list[Trial]:
    task_cls = tasks.declared(spec.task)
    shared = _trial_fields(spec, sweep_dir, source)
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
                                trial_id=trial_id(name, target, digest, seed, nnz),
                                config_hash=digest,
                                task_options=options_dict,
                                method=name,
                                method_config=config_dict,
                                target_sparsity=target,
                                target_nnz=nnz,
                                seed=seed,
                                **shared,
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
    if spec.search is not None:
        configs += [("search", methods.declared(m).Config) for m in search.METHODS]
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
