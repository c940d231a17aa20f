"""The sweep spec: YAML checked against typed dataclasses before anything starts or is written.

Every error is one line naming the file, the key and what is allowed, e.g.

    demo.yaml: methods.magnitude.begin_stp: unknown key; allowed: begin_step, end_step, frequency

In `task_options` and in a method's options, a list where a field takes one value is a grid over its values.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import re
import reprlib
import types
import typing
from typing import Any, Literal

import yaml

from methods.config import option
from sweep import search


class SpecError(ValueError):
    """A spec that cannot run. str(error) is the whole one-line message."""


@dataclasses.dataclass(frozen=True)
class Resources:
    workers: int = option(1, "training processes per trial (tasks that support it train data-parallel)", "[1, 4096]")
    cpus_per_worker: float = option(1.0, "CPUs reserved per worker; also the torch thread count", "(0, 4096]")
    gpus_per_worker: float = option(0.0, "GPUs reserved per worker", "[0, 64]")
    max_concurrent_trials: int = option(
        0, "upper bound on trials running at once (0: as many as resources allow)", "[0, 1e9]"
    )
    engine: Literal["torch", "deepspeed"] = option(
        "torch", "plain torch, or DeepSpeed (deepspeed.initialize per worker)"
    )
    zero_stage: int = option(
        0, "DeepSpeed ZeRO stage: 0 (plain data parallel, right for ResNet-50's size), 1 or 2", "[0, 1e9]"
    )
    pack: int | str = option(
        1,
        "small trials of one shape trained together as one Tune trial: at most this many per pack, or auto "
        "(up to 256, spread over the cluster's trial slots); 1: one trial per Tune trial. Trials that cannot "
        "pack run one each",
    )


@dataclasses.dataclass(frozen=True)
class Failure:
    max_failures: int = option(
        3, "times a crashed trial is restarted from its last checkpoint (-1: always)", "[-1, 1000000]"
    )
    worker_max_failures: int = option(
        2,
        "multi-worker trials: times Ray Train restarts a crashed worker group from the trial's last checkpoint, "
        "in place, before the trial itself counts as failed (-1: always)",
        "[-1, 1000000]",
    )


@dataclasses.dataclass(frozen=True)
class Stage:
    """A dependent stage (the lottery-ticket / scratch study): one child trial per (parent trial x variant),
    trained with the parent's final masks fixed. YAML spells `parent` as `from`."""

    variants: list[str] = option(
        help="per parent trial: scratch_e, scratch_b, lottery, sparsity_aware_init, scratch_b_sparsity_aware_init"
    )
    parent: str = option("main", "the stage whose trials are the parents: main (the spec's methods) or a stage")
    methods: list[str] = option([], "only parents trained with these methods (default: every method but dense)")
    parents: Literal["all", "best"] = option(
        "all", "all: every parent trial; best: the best configuration per method and sparsity (the study's choice)"
    )
    time_multiplier: float = option(
        2.0, "scratch_b variants train this many times the parent's length (study: 2)", "(0, 100]"
    )
    rewind_step: list[int] = option(
        [0], "lottery: the parent's weights after these steps (0: its initial weights)", "[0, 1e15]"
    )


@dataclasses.dataclass(frozen=True)
class Search:
    """The Sparsest-Models combinatorial search (sweep/search.py; papers/sparsest-models.md §3): phase 1 trains
    every structure of its grid dense inside a width-`width` model masked to the structure's top-left block;
    phase 2 trains every eligible mask of the hidden layers inside the smallest structure that reached `target`."""

    target: float = option(help="accuracy phase 1's best run of a structure must reach (e.g. 0.95)", range="(0, 1]")
    width: int = option(16, "the model every structure is masked inside (the study: 16)", "[1, 65536]")
    max_width: int = option(16, "phase 1: every d1, d2, d3 from 1 to this (at most `width`)", "[1, 65536]")
    below_params: int = option(
        0,
        "phase 1: only the structures with fewer dense weights + biases (fixed init: the benchmark's, 37 or 61); "
        "0: all",
        "[0, 1e12]",
    )
    task_options: dict = option(
        {}, help="phase 1's task options over the spec's (lists are grids), e.g. lr: [0.05, 0.1]"
    )
    phase2_task_options: dict = option({}, help="phase 2's task options over phase 1's, e.g. lr: 0.05")
    seeds: list[int] = option([0], "one trial per seed of every structure and mask", "[0, 4294967295]")
    structure: list = option(
        [], "phase 2's structure [d1, d2, d3]; [] (default): the one phase 1 chooses (sweep/search.py)"
    )
    expected_structure: list = option(
        [], "with structure [] : the structure `sparsity plan` sizes phase 2 for before phase 1 has run"
    )
    hidden_nnz_below: int = option(
        0,
        "phase 2: only masks whose hidden-layer nonzeros sum below this (the study's 99.5 % caps); 0: all",
        "[0, 1e9]",
    )
    masks_per_nnz: list = option(
        [], "phase 2: per hidden layer, at most this many masks per nnz value, e.g. [0, 6, 0] (0: all)"
    )


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str = option(help="sweep name: the results folder under the storage root")
    task: str = option(help="trainable task, e.g. cubist_spiral")
    methods: dict = option(
        {}, help="method name -> its options (lists are grids), or a list of such grids (their union)"
    )
    sparsity: list[float] = option([], "target sparsities in [0, 1), for methods that aim at one", "[0, 1)")
    nnz: list[int] = option(
        [],
        "instead of sparsity: numbers of prunable weights to keep (the Sparsest-Models study's targets)",
        "[1, 1e12]",
    )
    nnz_beyond_model: Literal["error", "skip"] = option(
        "error",
        "an nnz at or above a configuration's weight count: an error, or skip that (configuration, nnz) "
        "(the study's overparameterisation grid keeps only the targets below each width's weights)",
    )
    # at most 2**32 - 1: every seed the tasks derive from a trial's seed (seed * 1,000,003 + epoch) fits 64 bits
    seeds: list[int] = option([0], "one trial per seed for every configuration", "[0, 4294967295]")
    task_options: dict = option({}, help="the task's options (lists are grids)")
    resources: Resources = option(Resources(), help="per-trial resources")
    failure: Failure = option(Failure(), help="retry policy")
    stages: dict = option({}, help="dependent stages by name (e.g. reinit: {from: main, variants: [lottery]})")
    search: Search | None = option(None, help="the combinatorial search for the sparsest network (two stages)")
    description: str = option("", help="free text, kept with the results")


NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # matched whole (fullmatch: no trailing newline)
MAX_NAME = 100  # characters of a sweep or stage name: trial ids and suffixes must still fit a file name
MAX_DEPTH = 200  # YAML nesting levels a spec may use (its real depth is below 10)
MAX_TRIALS = 10_000_000  # trials one spec may plan (the Sparsest-Models grids are 10,000s to 485,838)
MAX_PACK = 65_536  # members of one pack

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxlong, _REPR.maxother = 1, 6, 6, 60, 40, 60


def short(value: Any) -> str:
    """A value as error messages quote it: its repr, cut short (a YAML alias bomb's repr is 80 MB)."""
    return _REPR.repr(value)


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (plain YAML silently keeps the last one)."""


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` then overriding a key is allowed
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain value, not {_kind(key)}", key_node.start_mark
            ) from None
        if first != key_node.start_mark.line + 1:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {short(key)} is given twice (first on line {first})", key_node.start_mark
            )
    return loader.construct_mapping(node, deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(path: str) -> Spec:
    """Read and validate a spec file; raises SpecError."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a folder, not a spec file") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read spec file: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    if _depth(text) > MAX_DEPTH:
        raise SpecError(f"{path}: nested more than {MAX_DEPTH} levels deep")
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or short(str(e))}") from None
    except RecursionError:
        raise SpecError(f"{path}: nested more than {MAX_DEPTH} levels deep") from None
    return parse(data, path)


def _depth(text: str) -> int:
    """An upper bound of the flow nesting ([ and {) of a YAML text, without parsing it (the parser recurses)."""
    deepest = depth = 0
    for bracket in _BRACKETS.finditer(text):
        if bracket.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest


_BRACKETS = re.compile(r"[\[\]{}]")


def parse(data: Any, source: str = "<spec>") -> Spec:
    """Validate a mapping (e.g. from YAML) into a Spec; raises SpecError naming `source` and the key."""
    from methods import declared as get_method
    from methods import names as method_names
    from trainables import tasks

    def fail(key: str, problem: str) -> typing.NoReturn:
        raise SpecError(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")

    given = build_fields(Spec, data, "", fail, grid=False)
    fields = {f.name: given[f.name] if f.name in given else _default(f) for f in dataclasses.fields(Spec)}
    if not NAME_RE.fullmatch(fields["name"]) or len(fields["name"]) > MAX_NAME:
        fail(
            "name",
            f"{short(fields['name'])} is not a valid folder name (letters, digits, '.', '_', '-'; "
            f"at most {MAX_NAME} characters)",
        )
    if fields["task"] not in tasks.names():
        fail("task", f"unknown task {short(fields['task'])}; registered: {', '.join(tasks.names())}")
    task_cls = tasks.declared(fields["task"])
    fields["task_options"] = build_fields(task_cls.Options, fields["task_options"], "task_options", fail, grid=True)
    configurations = grid_size(fields["task_options"], task_cls.Options)
    _construct_all(task_cls.Options, fields["task_options"], "task_options", fail)

    stage_only = {"fixed_mask": "trains a parent's masks in a dependent stage; give it as a stage (see `stages`)"}
    stage_only.update(dict.fromkeys(search.METHODS, "trains the combinatorial search's stages; see `search`"))
    first_stage_methods = [m for m in method_names() if m not in stage_only]
    if not fields["methods"] and given.get("search") is None:
        fail(
            "methods",
            f"at least one method (or a `search`) is required; registered: {', '.join(first_stage_methods)}",
        )
    parsed_methods = {}
    runs = 0  # per task configuration and seed
    for name, options in fields["methods"].items():
        key = f"methods.{_key(name)}"
        if name in stage_only:
            fail(key, stage_only[name])
        if name not in first_stage_methods:
            fail(key, f"unknown method; registered: {', '.join(first_stage_methods)}")
        method = get_method(name)
        if isinstance(options, list):  # several grids, run as their union
            if not options:
                fail(key, "an empty list gives no configurations")
            parsed_methods[name] = [
                build_fields(method.Config, o, f"{key}[{i}]", fail, True) for i, o in enumerate(options)
            ]
        else:
            parsed_methods[name] = build_fields(method.Config, options or {}, key, fail, True)
        grids = parsed_methods[name] if isinstance(options, list) else [parsed_methods[name]]
        targets = max(len(fields["sparsity"]) + len(fields["nnz"]), 1) if method.targets_sparsity else 1
        runs += targets * sum(grid_size(g, method.Config) for g in grids)
        if configurations * runs * max(len(fields["seeds"]), 1) > MAX_TRIALS:
            fail(key, f"the spec gives more than {MAX_TRIALS:,} trials; split it into several sweeps")
        for i, grid_values in enumerate(grids):
            _construct_all(method.Config, grid_values, f"{key}[{i}]" if isinstance(options, list) else key, fail)
    fields["methods"] = parsed_methods

    if fields["sparsity"] and fields["nnz"]:
        fail("nnz", "give the targets as sparsity or as nnz, not both")
    if (
        fields["nnz"]
        and task_cls.prunable_weights_for(_construct_first(task_cls.Options, fields["task_options"])) is None
    ):
        fail("nnz", f"task {task_cls.name} cannot count its weights before it is built; give targets as sparsity")
    if any(get_method(m).targets_sparsity for m in parsed_methods) and not (fields["sparsity"] or fields["nnz"]):
        fail(
            "sparsity",
            "a list of target sparsities in [0, 1) (or `nnz`: numbers of weights to keep) is required for "
            + ", ".join(m for m in parsed_methods if get_method(m).targets_sparsity),
        )
    fields["sparsity"] = [float(s) for s in fields["sparsity"]]
    if not fields["seeds"]:
        fail("seeds", "at least one seed is required")

    resources = Resources(**build_fields(Resources, given.get("resources"), "resources", fail, grid=False))
    if resources.workers > task_cls.max_workers:
        fail(
            "resources.workers",
            f"{resources.workers} is not supported by task {task_cls.name}; allowed: 1..{task_cls.max_workers}",
        )
    if resources.zero_stage not in (0, 1, 2):
        fail(
            "resources.zero_stage",
            f"{resources.zero_stage} is not supported: sparsifiers need whole parameters "
            "on every rank; allowed: 0, 1, 2",
        )
    if resources.pack != "auto" and (
        isinstance(resources.pack, bool) or not isinstance(resources.pack, int) or not 1 <= resources.pack <= MAX_PACK
    ):
        fail(
            "resources.pack",
            f"expected a count in [1, {MAX_PACK}] or auto, got {_kind(resources.pack)} {short(resources.pack)}",
        )
    fields["resources"] = resources
    fields["failure"] = Failure(**build_fields(Failure, given.get("failure"), "failure", fail, grid=False))
    fields["stages"] = _stages(fields["stages"], list(parsed_methods), fail)
    fields["search"] = _search(given.get("search"), fields, task_cls, fail)
    return Spec(**fields)


def _search(given: Any, fields: dict, task_cls, fail) -> Search | None:
    """Validate the search section: its structures, its task options over the spec's, its caps."""
    if given is None:
        return None
    values = build_fields(Search, given, "search", fail, grid=False)
    for name in ("task_options", "phase2_task_options"):
        if not isinstance(values.get(name, {}), dict):
            fail(f"search.{name}", f"expected a mapping of task options, got {_kind(values[name])}")
    one = Search(**values)
    chain = task_cls.chain_for(_construct_first(task_cls.Options, fields["task_options"]))
    if chain is None or len(chain) != 5:
        fail("search", f"task {task_cls.name} is not a chain of 3 hidden linear layers (cubist_spiral is)")
    d_in, d_out, hidden = chain[0], chain[-1], len(chain) - 2
    if one.max_width > one.width:
        fail("search.max_width", f"{one.max_width} is above the model's width ({one.width})")
    phase1 = {**fields["task_options"], "width": one.width}
    phase1.update(build_fields(task_cls.Options, one.task_options, "search.task_options", fail, grid=True))
    phase2 = {
        **phase1,
        **build_fields(task_cls.Options, one.phase2_task_options, "search.phase2_task_options", fail, True),
    }
    for where, merged in (("search.task_options", phase1), ("search.phase2_task_options", phase2)):
        for d in ("d1", "d2", "d3"):
            if merged.get(d, 0) != 0:
                fail(f"{where}.{d}", "the search sets each layer's active width itself; leave d1, d2, d3 unset")
        if merged.get("bias_mask") != "out_degree":
            fail(
                f"{where}.bias_mask",
                "the search masks a neuron's bias with its last outgoing weight (the study's convention): "
                "set bias_mask: out_degree",
            )
        _construct_all(task_cls.Options, merged, where, fail)
    for name in ("structure", "expected_structure"):
        value = getattr(one, name)
        if value and (
            len(value) != hidden
            or any(isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= one.width for d in value)
        ):
            fail(f"search.{name}", f"expected {hidden} widths in 1..{one.width} (or []), got {short(value)}")
    caps = one.masks_per_nnz
    if caps and (len(caps) != hidden or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in caps)):
        fail("search.masks_per_nnz", f"expected {hidden} counts >= 0 (one per hidden layer), got {short(caps)}")
    if not one.seeds:
        fail("search.seeds", "at least one seed is required")
    grid1 = search.structures(one.max_width, hidden, d_in, d_out, one.below_params)
    if not grid1:
        fail("search.below_params", f"no structure has fewer than {one.below_params} dense weights + biases")
    runs = len(grid1) * grid_size(phase1, task_cls.Options) * len(one.seeds)
    sized = one.structure or one.expected_structure
    if sized:
        runs += search.mask_count(one, tuple(sized), d_in) * grid_size(phase2, task_cls.Options) * len(one.seeds)
    if runs > MAX_TRIALS:
        fail("search", f"the search gives more than {MAX_TRIALS:,} trials; raise below_params or add caps")
    return dataclasses.replace(one, task_options=phase1, phase2_task_options=phase2)


def _stages(given: Any, first_methods: list[str], fail) -> dict[str, Stage]:
    """Validate the stages; each one's parent must be `main` or a stage listed before it."""
    from trainables.training.variants import VARIANTS

    if not isinstance(given, dict):
        fail("stages", f"expected a mapping of stage names to stages, got {_kind(given)}")
    stages: dict[str, Stage] = {}
    for name, data in given.items():
        key = f"stages.{_key(name)}"
        if not isinstance(name, str) or not NAME_RE.fullmatch(name) or len(name) > MAX_NAME or name == "main":
            fail(
                key,
                f"a stage name is letters, digits, '.', '_', '-' (at most {MAX_NAME}), and not 'main' (the first "
                "stage's name)",
            )
        if isinstance(data, dict) and "from" in data:
            if "parent" in data:
                fail(key, "give the parent stage once, as `from`")
            data = {("parent" if k == "from" else k): v for k, v in data.items()}
        if isinstance(data, dict) and isinstance(data.get("rewind_step"), int):
            data = {**data, "rewind_step": [data["rewind_step"]]}  # one step, or a list of them
        stage = Stage(**build_fields(Stage, data, key, fail, grid=False))
        known = ["main", *stages]
        if stage.parent not in known:
            fail(
                f"{key}.from", f"unknown stage {short(stage.parent)}; it must be one listed before: {', '.join(known)}"
            )
        if not stage.variants:
            fail(f"{key}.variants", f"at least one variant is required: {', '.join(VARIANTS)}")
        for i, variant in enumerate(stage.variants):
            if variant not in VARIANTS:
                fail(f"{key}.variants[{i}]", f"unknown variant {short(variant)}; choose from {', '.join(VARIANTS)}")
        parent_methods = first_methods if stage.parent == "main" else ["fixed_mask"]
        for i, method in enumerate(stage.methods):
            if method not in parent_methods:
                fail(
                    f"{key}.methods[{i}]", f"{short(method)} trains no trial of stage {stage.parent}: {parent_methods}"
                )
        if not stage.methods and parent_methods == ["dense"]:
            fail(
                key,
                f"stage {stage.parent} trains only dense, which leaves no masks to keep, so this stage would have no "
                "trials; add a pruning method to it",
            )
        stages[name] = stage
    return stages


def _construct_first(cls: type, values: dict[str, Any]) -> Any:
    """The first configuration of a grid (validated already)."""
    hints = typing.get_type_hints(cls)
    return cls(**{k: v[0] if isinstance(v, list) and v and not takes_list(hints[k]) else v for k, v in values.items()})


def takes_list(tp: Any) -> bool:
    return tp is list or typing.get_origin(tp) is list


def grid(values: dict[str, Any], cls: type) -> list[dict[str, Any]]:
    """Expand list-valued options (where the field takes one value) into their cartesian product."""
    hints = typing.get_type_hints(cls)
    axes = [v if isinstance(v, list) and not takes_list(hints[k]) else [v] for k, v in values.items()]
    return [dict(zip(values, combo)) for combo in itertools.product(*axes)]


def grid_size(values: dict[str, Any], cls: type) -> int:
    """How many configurations `grid(values, cls)` gives, without expanding them."""
    hints = typing.get_type_hints(cls)
    return math.prod(len(v) if isinstance(v, list) and not takes_list(hints[k]) else 1 for k, v in values.items())


def _construct_all(cls: type, values: dict[str, Any], where: str, fail) -> None:
    for combo in grid(values, cls):
        try:
            cls(**combo)
        except ValueError as e:
            fail(where, str(e))


def build_fields(cls: type, data: Any, where: str, fail, grid: bool) -> dict[str, Any]:
    """Check `data` against the dataclass `cls`: unknown keys, missing keys, types and ranges. Returns plain values.

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
            fail(f"{prefix}{_key(key)}", f"unknown key; allowed: {', '.join(allowed)}")
    out = {}
    for name, field in allowed.items():
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                fail(f"{prefix}{name}", f"missing; this key is required ({field.metadata.get('help', '')})")
            continue
        value, tp, bounds = data[name], hints[name], field.metadata.get("range")
        if grid and isinstance(value, list) and not takes_list(tp):
            if not value:
                fail(f"{prefix}{name}", "an empty list gives no configurations")
            out[name] = [check_type(v, tp, f"{prefix}{name}", fail, bounds) for v in value]
            _no_duplicates(out[name], f"{prefix}{name}", fail)
        elif dataclasses.is_dataclass(tp):
            out[name] = value  # nested section: validated by the caller
        else:
            out[name] = check_type(value, tp, f"{prefix}{name}", fail, bounds)
    return out


def check_type(value: Any, tp: Any, key: str, fail, bounds: str | None = None) -> Any:
    """`value` as type `tp` (int, float, str, bool, a Literal, list[X] or dict[str, X]), inside the interval
    `bounds` (e.g. "[0, 1)": numbers, or a list's elements, or a dict's values); fails naming `key` otherwise.
    Numbers must be finite. A list's elements must be distinct."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if not _scalar(value) or not any(value == c and type(value) is type(c) for c in choices):
            fail(key, f"{short(value)} is not allowed; choose one of {', '.join(map(str, choices))}")
        return value
    if tp is float:
        number = value
        if isinstance(value, str):  # YAML reads 5e-4 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            fail(key, f"expected a number, got {_kind(value)} {short(value)}")
        try:
            number = float(number)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            fail(key, f"expected a finite number, got {short(value)}")
        return _within(number, bounds, key, fail)
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            fail(key, f"expected an integer, got {_kind(value)} {short(value)}")
        return _within(value, bounds, key, fail)
    if origin is list:
        if not isinstance(value, list):
            fail(key, f"expected a list, got {_kind(value)} {short(value)}")
        (item,) = typing.get_args(tp)
        items = [check_type(v, item, f"{key}[{i}]", fail, bounds) for i, v in enumerate(value)]
        _no_duplicates(items, key, fail)
        return items
    if origin is dict:
        if not isinstance(value, dict):
            fail(key, f"expected a mapping, got {_kind(value)} {short(value)}")
        key_type, item = typing.get_args(tp)
        for k in value:
            check_type(k, key_type, f"{key} (its key {short(k)})", fail)
        return {k: check_type(v, item, f"{key}.{k}", fail, bounds) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        return value  # checked by the caller (e.g. resources.pack: a count or auto)
    expected = {str: "a string", bool: "true or false", dict: "a mapping", list: "a list"}.get(tp)
    if expected and not isinstance(value, tp):
        fail(key, f"expected {expected}, got {_kind(value)} {short(value)}")
    return value


@functools.cache
def interval(bounds: str) -> tuple[float, float, bool, bool]:
    """ "[0, 1)" -> (0.0, 1.0, True, False): low, high, and whether each end is included."""
    match = re.fullmatch(r"([\[(])\s*(\S+?)\s*,\s*(\S+?)\s*([\])])", bounds)
    if not match:
        raise ValueError(f"not an interval: {bounds!r} (write e.g. [0, 1) or (0, inf))")
    return float(match[2]), float(match[3]), match[1] == "[", match[4] == "]"


def _within(number: int | float, bounds: str | None, key: str, fail) -> int | float:
    if bounds is None:
        return number
    low, high, low_in, high_in = interval(bounds)
    inside = (low <= number if low_in else low < number) and (number <= high if high_in else number < high)
    if not inside:
        fail(key, f"{short(number)} is outside {bounds}")
    return number


def _key(key: Any) -> str:
    """A key as messages name it: plain if it is a plain name, quoted (and cut short) otherwise."""
    return key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else short(key)


_PLAIN_KEY = re.compile(r"[A-Za-z_][\w-]{0,60}")


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def _default(field: dataclasses.Field) -> Any:
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def _no_duplicates(values: list, key: str, fail) -> None:
    """Distinct values (checked scalars), in linear time: 100,000s of seeds validate at once."""
    seen: set = set()
    twice: dict = {}
    for v in values:
        if v in seen:
            twice.setdefault(v, None)
        seen.add(v)
    if twice:
        fail(key, f"duplicate values {short(list(twice))}")


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
