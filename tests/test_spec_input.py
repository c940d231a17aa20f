"""Bad spec input, one test per class of input: each gets one line naming the file and the key, never a
traceback, and values that cannot be meant (NaN, infinity, out-of-range numbers) are refused before Ray starts."""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from typing import Literal

import pytest
import yaml

import methods
from sweep import plan, spec
from sweep.cli import demo_spec
from sweep.spec import SpecError
from tests.conftest import SPECS
from trainables import tasks

BUNDLED = os.path.dirname(demo_spec())


def tiny() -> dict:
    with open(os.path.join(SPECS, "tiny.yaml")) as f:
        return yaml.safe_load(f)


def bundled(name: str) -> dict:
    with open(os.path.join(BUNDLED, name)) as f:
        return yaml.safe_load(f)


def error_of(data, source: str = "s.yaml") -> str:
    """The one-line error of a spec that `sparsity plan` refuses (parse, then expand)."""
    with pytest.raises(SpecError) as info:
        plan.expand(spec.parse(data, source), "/tmp/unused", source)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{source}: ") and len(message) < 400, message
    return message


def file_error(tmp_path, text: bytes | str) -> str:
    path = tmp_path / "x.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SpecError) as info:
        spec.load(str(path))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and len(message) < 400, message
    return message[len(str(path)) + 2 :]


def test_files_that_are_not_a_readable_yaml_mapping(tmp_path):
    assert file_error(tmp_path, b"\xff") == "not UTF-8 text (byte 0xff at offset 0)"
    assert file_error(tmp_path, "[" * 2000) == f"nested more than {spec.MAX_DEPTH} levels deep"
    file_error(tmp_path, "- " * 3000 + "x\n")  # deep block nesting: one line too, whatever the parser makes of it
    assert file_error(tmp_path, "name: a\nname: b\n") == (
        "not valid YAML (line 2): key 'name' is given twice (first on line 1)"
    )
    assert "a key must be a plain value" in file_error(tmp_path, "? [a]\n: 1\n")
    assert file_error(tmp_path, "- 1\n") == "spec: expected a mapping of keys to values, got a list"
    os.mkdir(tmp_path / "folder.yaml")
    with pytest.raises(SpecError, match=r"folder.yaml: is a folder, not a spec file$"):
        spec.load(str(tmp_path / "folder.yaml"))


def test_a_yaml_merge_key_may_be_overridden(tmp_path):
    path = tmp_path / "m.yaml"
    data = tiny()
    text = yaml.safe_dump({k: v for k, v in data.items() if k != "task_options"}, sort_keys=False)
    text += "base: &base {epochs: 2, lr: 0.1}\n"
    path.write_text(text.replace("base: &base", "x-unused: &base") + "task_options: {<<: *base, lr: 0.05}\n")
    with pytest.raises(SpecError, match="x-unused: unknown key"):  # the merge itself is fine
        spec.load(str(path))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "1e400", ".nan"])
def test_numbers_must_be_finite(bad):
    for key, where in [
        ("lr", "task_options"),
        ("weight_decay", "task_options"),
        ("cpus_per_worker", "resources"),
        ("gpus_per_worker", "resources"),
    ]:
        data = tiny()
        data.setdefault(where, {})[key] = bad
        message = error_of(data)
        assert f"s.yaml: {where}.{key}: " in message
        assert "finite" in message or "expected a number" in message
    data = bundled("cubist_four_methods.yaml")
    data["methods"]["variational_dropout"]["weight"] = bad
    assert "methods.variational_dropout.weight: " in error_of(data)


def test_numbers_outside_their_range():
    cases = [
        ("resnet50_tiny_cpu.yaml", ("task_options", "lr_per_256"), -0.1),
        ("resnet50_tiny_cpu.yaml", ("task_options", "warmup_epochs"), -1),
        ("resnet50_tiny_cpu.yaml", ("task_options", "momentum"), 5),
        ("resnet50_tiny_cpu.yaml", ("task_options", "synthetic_images"), 0),
        ("resnet50_tiny_cpu.yaml", ("task_options", "resize_size"), 0),
        ("resnet50_tiny_cpu.yaml", ("task_options", "train_steps"), 1e30),
        ("transformer_tiny_cpu.yaml", ("task_options", "lr_constant"), -2),
        ("transformer_tiny_cpu.yaml", ("task_options", "adam_beta1"), 1.5),
        ("transformer_tiny_cpu.yaml", ("task_options", "adam_eps"), 0),
        ("lottery_cubist.yaml", ("stages", "reinit", "time_multiplier"), 1e308),
        ("tiny.yaml", ("failure", "max_failures"), 1e30),
        ("tiny.yaml", ("methods", "magnitude", "frequency"), 1e30),
        ("tiny.yaml", ("resources", "cpus_per_worker"), 0),
    ]
    for name, path, bad in cases:
        data = tiny() if name == "tiny.yaml" else bundled(name)
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = bad
        message = error_of(data)
        assert f": {'.'.join(path)}: " in message and "is outside" in message, (path, message)
    assert "seeds[0]: 1125899906842624 is outside [0, 4294967295]" in error_of({**tiny(), "seeds": [2**50]})
    data = bundled("resnet50_lottery.yaml")
    data["task_options"]["decay_factor"] = 0
    assert "task_options.decay_factor: 0.0 is outside" in error_of(data)


def test_wrong_types_inside_lists_and_mappings():
    data = bundled("resnet50_lottery.yaml")
    data["task_options"]["decay_epochs"] = ["abc"]
    assert "task_options.decay_epochs[0]: expected an integer, got a string 'abc'" in error_of(data)
    data = bundled("lottery_cubist.yaml")
    data["stages"]["reinit"]["variants"] = [["lottery"]]
    assert "stages.reinit.variants[0]: expected a string, got a list" in error_of(data)
    data = tiny()
    data["methods"]["magnitude"]["layer_overrides"] = {1: 0.5, "a": 0.3}
    assert "methods.magnitude.layer_overrides (its key 1): expected a string, got int 1" in error_of(data)
    data["methods"]["magnitude"]["layer_overrides"] = {"0.*": 1.5}
    assert "methods.magnitude.layer_overrides.0.*: 1.5 is outside [0, 1)" in error_of(data)


def test_lists_whose_values_repeat():
    data = bundled("cubist_four_methods.yaml")
    data["methods"]["variational_dropout"]["thresholds"] = [0.5, 0.5]
    assert "methods.variational_dropout.thresholds: duplicate values [0.5]" in error_of(data)
    assert "seeds: duplicate values [3]" in error_of({**tiny(), "seeds": [3, 1, 3, 3]})
    data = bundled("lottery_cubist.yaml")
    data["stages"]["reinit"]["variants"] = ["lottery", "lottery"]
    assert "stages.reinit.variants: duplicate values ['lottery']" in error_of(data)


def test_names_that_cannot_be_a_folder():
    for bad in ["demo\n", "a" * 101, "a/b", "..", " x", ""]:
        assert "name: " in error_of({**tiny(), "name": bad}) and "not a valid folder name" in error_of(
            {**tiny(), "name": bad}
        )
    assert spec.parse({**tiny(), "name": "a" * 100}).name == "a" * 100


def test_a_stage_whose_parents_are_all_dense():
    data = bundled("lottery_cubist.yaml")
    data["methods"] = {"dense": {}}
    data.pop("sparsity", None)
    assert "stage main trains only dense, which leaves no masks to keep" in error_of(data)


def test_huge_lists_validate_in_linear_time_and_errors_quote_a_short_prefix(tmp_path):
    data = {**tiny(), "seeds": list(range(200_000))}
    assert len(spec.parse(data).seeds) == 200_000  # quadratic duplicate checks never finished at this size
    levels = ["&a [" + ",".join(["lol"] * 9) + "]"]
    levels += [f"&{b} [" + ",".join([f"*{a}"] * 9) + "]" for a, b in zip("abcdefg", "bcdefgh")]
    path = tmp_path / "bomb.yaml"  # 9**8 strings once expanded, from under 400 bytes
    path.write_text(f"name: [{', '.join(levels)}]\n" + yaml.safe_dump({k: v for k, v in tiny().items() if k != "name"}))
    with pytest.raises(SpecError, match="name: expected a string, got a list") as info:
        spec.load(str(path))
    assert len(str(info.value)) < 400
    message = error_of({**tiny(), "name": [[["x" * 10_000] * 1000] * 1000]})
    assert "name: expected a string, got a list" in message
    data = tiny()  # 1,000 learning rates x 2 methods x 5,001 seeds: refused before any is expanded
    data = {
        **data,
        "seeds": list(range(5001)),
        "task_options": {**data["task_options"], "lr": [i / 1e3 for i in range(1, 1001)]},
    }
    assert "the spec gives more than 10,000,000 trials" in error_of(data)


def _numeric(tp) -> bool:
    origin = typing.get_origin(tp)
    if origin in (list, dict):
        return _numeric(typing.get_args(tp)[-1])
    return tp in (int, float)


def _supported(tp) -> bool:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return True
    if origin is list:
        return _supported(typing.get_args(tp)[0])
    if origin is dict:
        return typing.get_args(tp)[0] is str and _supported(typing.get_args(tp)[1])
    return tp in (int, float, str, bool)


def _configs():
    yield "resources", spec.Resources
    yield "failure", spec.Failure
    yield "stages.*", spec.Stage
    for name in methods.names():
        yield f"methods.{name}", methods.get(name).Config
    for name in tasks.names():
        yield f"task {name}", tasks.get(name).Options


@pytest.mark.parametrize("where,cls", list(_configs()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_option_has_a_type_and_every_number_a_range(where, cls):
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        if field.name == "pack":  # a count or auto: checked by hand
            continue
        assert _supported(tp), f"{where}.{field.name}: type {tp} is not one a spec can check"
        if _numeric(tp):
            bounds = field.metadata.get("range")
            assert bounds, f"{where}.{field.name}: a number needs a range"
            spec.interval(bounds)  # parses
            if field.default is not dataclasses.MISSING:  # the default itself is allowed
                spec.check_type(field.default, tp, field.name, _raise, bounds)


def _raise(key, problem):
    raise AssertionError(f"{key}: {problem}")


@pytest.mark.parametrize(
    "args,problem",
    [
        (["debug", "SPEC", "--log-every", "0"], "argument --log-every: '0' is not a whole number of steps above 0"),
        (["debug", "SPEC", "--steps", "-1"], "argument --steps: '-1' is not a whole number of steps above 0"),
        (["debug", "SPEC", "--trial", "x"], "argument --trial: 'x' is not a whole number of trials of at least 0"),
        (
            ["report", "x", "--heatmap-sparsity", "nan"],
            "argument --heatmap-sparsity: 'nan' is not a sparsity in [0, 1)",
        ),
        (["submit", "SPEC", "--address", "a", "--wait", "-1"], "argument --wait: '-1' is not seconds in [0, 1e+09)"),
    ],
)
def test_command_line_numbers_are_checked_by_the_parser(args, problem, capsys):
    from sweep.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([a.replace("SPEC", os.path.join(SPECS, "tiny.yaml")) for a in args])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"sparsity {args[0]}: error: {problem}"
