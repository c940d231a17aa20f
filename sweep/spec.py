"""The sweep spec: YAML checked against typed dataclasses before anything starts or is written.

Every error is one line naming the file, the key and what is allowed, e.g.

    demo.yaml: methods.magnitude.begin_stp: unknown key; allowed: begin_step, end_step, frequency

In `task_options` and in a method's options, a list where a field takes one value is a grid over its values.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import typing
from typing import Any, Literal

import yaml

from methods.base import option


class SpecError(ValueError):
    """A spec that cannot run. str(error) is the whole one-line message."""


@dataclasses.dataclass(frozen=True)
class Resources:
    workers: int = option(1, "training processes per trial (tasks that support it train data-parallel)")
    cpus_per_worker: float = option(1.0, "CPUs reserved per worker; also the torch thread count")
    gpus_per_worker: float = option(0.0, "GPUs reserved per worker")
    max_concurrent_trials: int = option(0, "upper bound on trials running at once (0: as many as resources allow)")
    engine: Literal["torch", "deepspeed"] = option(
        "torch", "plain torch, or DeepSpeed (deepspeed.initialize per worker)"
    )
    zero_stage: int = option(0, "DeepSpeed ZeRO stage: 0 (plain data parallel, right for ResNet-50's size), 1 or 2")
    pack: int | str = option(
        1,
        "small trials of one shape trained together as one Tune trial: at most this many per pack, or auto "
        "(up to 256, spread over the cluster's trial slots); 1: one trial per Tune trial. Trials that cannot "
        "pack run one each",
    )


@dataclasses.dataclass(frozen=True)
class Failure:
    max_failures: int = option(3, "times a crashed trial is restarted from its last checkpoint (-1: always)")
    worker_max_failures: int = option(
        2,
        "multi-worker trials: times Ray Train restarts a crashed worker group from the trial's last checkpoint, "
        "in place, before the trial itself counts as failed (-1: always)",
    )


@dataclasses.dataclass(frozen=True)
class Stage:
    """A dependent stage (the lottery-ticket / scratch study): one child trial per (parent trial x variant),
    trained with the parent's final masks fixed. YAML spells `parent` as `from`."""

    variants: list = option(
        help="per parent trial: scratch_e, scratch_b, lottery, sparsity_aware_init, scratch_b_sparsity_aware_init"
    )
    parent: str = option("main", "the stage whose trials are the parents: main (the spec's methods) or a stage")
    methods: list = option([], "only parents trained with these methods (default: every method but dense)")
    parents: Literal["all", "best"] = option(
        "all", "all: every parent trial; best: the best configuration per method and sparsity (the study's choice)"
    )
    time_multiplier: float = option(2.0, "scratch_b variants train this many times the parent's length (study: 2)")
    rewind_step: list = option([0], "lottery: the parent's weights after these steps (0: its initial weights)")


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str = option(help="sweep name: the results folder under the storage root")
    task: str = option(help="trainable task, e.g. cubist_spiral")
    methods: dict = option(help="method name -> its options (lists are grids), or a list of such grids (their union)")
    sparsity: list = option([], help="target sparsities in [0, 1), for methods that aim at one")
    seeds: list = option([0], help="one trial per seed for every configuration")
    task_options: dict = option({}, help="the task's options (lists are grids)")
    resources: Resources = option(Resources(), help="per-trial resources")
    failure: Failure = option(Failure(), help="retry policy")
    stages: dict = option({}, help="dependent stages by name (e.g. reinit: {from: main, variants: [lottery]})")
    description: str = option("", help="free text, kept with the results")


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def load(path: str) -> Spec:
    """Read and validate a spec file; raises SpecError."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read spec file: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    return parse(data, path)


def parse(data: Any, source: str = "<spec>") -> Spec:
    """Validate a mapping (e.g. from YAML) into a Spec; raises SpecError naming `source` and the key."""
    from methods import get as get_method
    from methods import names as method_names
    from trainables import tasks

    def fail(key: str, problem: str) -> typing.NoReturn:
        raise SpecError(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")

    given = build_fields(Spec, data, "", fail, grid=False)
    fields = {f.name: given[f.name] if f.name in given else _default(f) for f in dataclasses.fields(Spec)}
    if not NAME_RE.match(fields["name"]):
        fail("name", f"{fields['name']!r} is not a valid folder name (letters, digits, '.', '_', '-')")
    if fields["task"] not in tasks.names():
        fail("task", f"unknown task {fields['task']!r}; registered: {', '.join(tasks.names())}")
    task_cls = tasks.get(fields["task"])
    fields["task_options"] = build_fields(task_cls.Options, fields["task_options"], "task_options", fail, grid=True)
    _construct_all(task_cls.Options, fields["task_options"], "task_options", fail)

    first_stage_methods = [m for m in method_names() if m != "fixed_mask"]  # fixed_mask: stages only
    if not fields["methods"]:
        fail("methods", f"at least one method is required; registered: {', '.join(first_stage_methods)}")
    parsed_methods = {}
    for name, options in fields["methods"].items():
        if name == "fixed_mask":
            fail(f"methods.{name}", "trains a parent's masks in a dependent stage; give it as a stage (see `stages`)")
        if name not in first_stage_methods:
            fail(f"methods.{name}", f"unknown method; registered: {', '.join(first_stage_methods)}")
        config = get_method(name).Config
        if isinstance(options, list):  # several grids, run as their union
            if not options:
                fail(f"methods.{name}", "an empty list gives no configurations")
            parsed_methods[name] = [
                build_fields(config, o, f"methods.{name}[{i}]", fail, True) for i, o in enumerate(options)
            ]
            for i, grid_values in enumerate(parsed_methods[name]):
                _construct_all(config, grid_values, f"methods.{name}[{i}]", fail)
        else:
            parsed_methods[name] = build_fields(config, options or {}, f"methods.{name}", fail, True)
            _construct_all(config, parsed_methods[name], f"methods.{name}", fail)
    fields["methods"] = parsed_methods

    sparsity = fields["sparsity"]
    for i, s in enumerate(sparsity):
        if isinstance(s, bool) or not isinstance(s, (int, float)):
            fail(f"sparsity[{i}]", f"expected a number in [0, 1), got {s!r}")
        if not 0.0 <= s < 1.0:
            fail(f"sparsity[{i}]", f"{s} is outside [0, 1)")
    if any(get_method(m).targets_sparsity for m in parsed_methods) and not sparsity:
        fail(
            "sparsity",
            "a list of target sparsities in [0, 1) is required for "
            + ", ".join(m for m in parsed_methods if get_method(m).targets_sparsity),
        )
    _no_duplicates(sparsity, "sparsity", fail)
    fields["sparsity"] = [float(s) for s in sparsity]

    seeds = fields["seeds"]
    for i, s in enumerate(seeds):
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            fail(f"seeds[{i}]", f"expected a non-negative integer, got {s!r}")
    if not seeds:
        fail("seeds", "at least one seed is required")
    _no_duplicates(seeds, "seeds", fail)
    fields["seeds"] = seeds

    resources = Resources(**build_fields(Resources, given.get("resources"), "resources", fail, grid=False))
    if not 1 <= resources.workers <= task_cls.max_workers:
        fail(
            "resources.workers",
            f"{resources.workers} is not supported by task {task_cls.name}; allowed: 1..{task_cls.max_workers}",
        )
    if resources.cpus_per_worker <= 0 or resources.gpus_per_worker < 0:
        fail("resources", "cpus_per_worker must be > 0 and gpus_per_worker >= 0")
    if resources.zero_stage not in (0, 1, 2):
        fail(
            "resources.zero_stage",
            f"{resources.zero_stage} is not supported: sparsifiers need whole parameters "
            "on every rank; allowed: 0, 1, 2",
        )
    if resources.pack != "auto" and (
        isinstance(resources.pack, bool) or not isinstance(resources.pack, int) or resources.pack < 1
    ):
        fail("resources.pack", f"expected a positive integer or auto, got {_kind(resources.pack)} {resources.pack!r}")
    if resources.max_concurrent_trials < 0:
        fail("resources.max_concurrent_trials", "expected 0 (no limit) or a positive count")
    fields["resources"] = resources
    failure = Failure(**build_fields(Failure, given.get("failure"), "failure", fail, grid=False))
    for name in ("max_failures", "worker_max_failures"):
        if getattr(failure, name) < -1:
            fail(f"failure.{name}", f"expected -1 (always) or a count >= 0, got {getattr(failure, name)}")
    fields["failure"] = failure
    fields["stages"] = _stages(fields["stages"], list(parsed_methods), fail)
    return Spec(**fields)


def _stages(given: Any, first_methods: list[str], fail) -> dict[str, Stage]:
    """Validate the stages; each one's parent must be `main` or a stage listed before it."""
    from trainables.training.reinit import VARIANTS

    if not isinstance(given, dict):
        fail("stages", f"expected a mapping of stage names to stages, got {_kind(given)}")
    stages: dict[str, Stage] = {}
    for name, data in given.items():
        key = f"stages.{name}"
        if not isinstance(name, str) or not NAME_RE.match(name) or name == "main":
            fail(key, "a stage name is letters, digits, '.', '_', '-', and not 'main' (the first stage's name)")
        if isinstance(data, dict) and "from" in data:
            if "parent" in data:
                fail(key, "give the parent stage once, as `from`")
            data = {("parent" if k == "from" else k): v for k, v in data.items()}
        if isinstance(data, dict) and isinstance(data.get("rewind_step"), int):
            data = {**data, "rewind_step": [data["rewind_step"]]}  # one step, or a list of them
        stage = Stage(**build_fields(Stage, data, key, fail, grid=False))
        known = ["main", *stages]
        if stage.parent not in known:
            fail(f"{key}.from", f"unknown stage {stage.parent!r}; it must be one listed before: {', '.join(known)}")
        if not stage.variants:
            fail(f"{key}.variants", f"at least one variant is required: {', '.join(VARIANTS)}")
        for i, variant in enumerate(stage.variants):
            if variant not in VARIANTS:
                fail(f"{key}.variants[{i}]", f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
        _no_duplicates(stage.variants, f"{key}.variants", fail)
        parent_methods = first_methods if stage.parent == "main" else ["fixed_mask"]
        for i, method in enumerate(stage.methods):
            if method not in parent_methods:
                fail(f"{key}.methods[{i}]", f"{method!r} trains no trial of stage {stage.parent}: {parent_methods}")
        if not stage.time_multiplier > 0:
            fail(f"{key}.time_multiplier", f"expected a number > 0, got {stage.time_multiplier}")
        for i, step in enumerate(stage.rewind_step):
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                fail(f"{key}.rewind_step[{i}]", f"expected a step >= 0, got {step!r}")
        _no_duplicates(stage.rewind_step, f"{key}.rewind_step", fail)
        stages[name] = stage
    return stages


def takes_list(tp: Any) -> bool:
    return tp is list or typing.get_origin(tp) is list


def grid(values: dict[str, Any], cls: type) -> list[dict[str, Any]]:
    """Expand list-valued options (where the field takes one value) into their cartesian product."""
    hints = typing.get_type_hints(cls)
    axes = [v if isinstance(v, list) and not takes_list(hints[k]) else [v] for k, v in values.items()]
    return [dict(zip(values, combo)) for combo in itertools.product(*axes)]


def _construct_all(cls: type, values: dict[str, Any], where: str, fail) -> None:
    for combo in grid(values, cls):
        try:
            cls(**combo)
        except ValueError as e:
            fail(where, str(e))


def build_fields(cls: type, data: Any, where: str, fail, grid: bool) -> dict[str, Any]:
    """Check `data` against the dataclass `cls`: unknown keys, missing keys and types. Returns plain values.

    With grid=True a list where a field takes one value is a grid: each element is checked and the list kept.
    """
    prefix = f"{where}." if where else ""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        fail(where or "spec", f"expected a mapping of keys to values, got {_kind(data)}")
    allowed = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in allowed:
            fail(f"{prefix}{key}", f"unknown key; allowed: {', '.join(allowed)}")
    out = {}
    for name, field in allowed.items():
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                fail(f"{prefix}{name}", f"missing; this key is required ({field.metadata.get('help', '')})")
            continue
        value, tp = data[name], hints[name]
        if grid and isinstance(value, list) and not takes_list(tp):
            if not value:
                fail(f"{prefix}{name}", "an empty list gives no configurations")
            _no_duplicates(value, f"{prefix}{name}", fail)
            out[name] = [check_type(v, tp, f"{prefix}{name}", fail) for v in value]
        elif dataclasses.is_dataclass(tp):
            out[name] = value  # nested section: validated by the caller
        else:
            out[name] = check_type(value, tp, f"{prefix}{name}", fail)
    return out


def check_type(value: Any, tp: Any, key: str, fail) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            fail(key, f"{value!r} is not allowed; choose one of {', '.join(map(str, typing.get_args(tp)))}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML reads 5e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(key, f"expected a number, got {_kind(value)} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            fail(key, f"expected an integer, got {_kind(value)} {value!r}")
        return value
    expected = {str: "a string", bool: "true or false", dict: "a mapping", list: "a list"}.get(origin or tp)
    if expected and not isinstance(value, origin or tp):
        fail(key, f"expected {expected}, got {_kind(value)} {value!r}")
    return value


def _default(field: dataclasses.Field) -> Any:
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def _no_duplicates(values: list, key: str, fail) -> None:
    seen = [v for i, v in enumerate(values) if v in values[:i]]
    if seen:
        fail(key, f"duplicate values {seen}")


def describe(cls: type) -> list[tuple[str, str, str]]:
    """(name, default, help) of every field of a config dataclass, for --help style listings."""
    rows = []
    for f in dataclasses.fields(cls):
        default = (
            "required"
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            else repr(f.default if f.default is not dataclasses.MISSING else f.default_factory())
        )
        rows.append((f.name, default, f.metadata.get("help", "")))
    return rows
