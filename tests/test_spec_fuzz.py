"""A seeded fuzz test over the bundled specs: hundreds of mutated specs through the check `sparsity plan` uses, and
a sample through the real CLI. Every refused spec gets one line naming the file and the key, exit 2, and nothing
written; nothing else raises."""

from __future__ import annotations

import copy
import glob
import math
import os
import random
import re

import pytest
import yaml

from sweep import plan, spec
from sweep.cli import demo_spec
from sweep.spec import SpecError
from tests.conftest import sparsity_cli

BUNDLED = sorted(glob.glob(os.path.join(os.path.dirname(demo_spec()), "*.yaml")))
SEED = 20261202
DATA_MUTATIONS = 400
TEXT_MUTATIONS = 100
CLI_SAMPLE = 12

ODD = [
    None, True, False, 0, -1, 1, 2, 0.5, 1.5, -0.5, 1e30, 1e308, 2**64, 2**31, math.nan, math.inf, -math.inf,
    "", "abc", ".nan", "1e400", "x" * 300, "demo\n", "../x", [], {}, [[1]], [1, 1], ["a", "a"], {"a": 1},
    {1: 0.5}, [0.5, 0.5], 10**20,
]  # fmt: skip
# a key, then "file: key: problem"; a key is dotted names and [indices], and may quote a key, e.g. "(its key 1)"
ONE_LINE = re.compile(r"""^(?P<file>[^:]+): (?P<key>(?:[^:'" ]|'[^']*'|"[^"]*")+( \([^)]*\))?): \S.*$""")
FILE_ONLY = ("not valid YAML", "not UTF-8 text", "nested more than")


def _paths(node, prefix=()):
    """Every (path, value) in a nested spec: mapping keys and list indices."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _set(data, path, value):
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def mutate(data: dict, rng: random.Random) -> tuple[dict, str]:
    data = copy.deepcopy(data)
    path, value = rng.choice([p for p in _paths(data) if p[0]])
    kind = rng.choice(["odd", "odd", "odd", "delete", "misspell", "extra", "wrap", "repeat", "scale"])
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if kind == "odd":
        _set(data, path, copy.deepcopy(rng.choice(ODD)))
    elif kind == "delete":
        del parent[last]
    elif kind == "misspell" and isinstance(last, str):
        parent[last[:-1] + "x"] = parent.pop(last)
    elif kind == "extra" and isinstance(value, dict):
        value["unknown_key"] = 1
    elif kind == "wrap":
        _set(data, path, [value, value] if rng.random() < 0.5 else [value])
    elif kind == "repeat" and isinstance(value, list) and value:
        value.append(value[0])
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _set(data, path, value * rng.choice([-1, 0, 1e6, 1e300, 0.5]))
    else:
        _set(data, path, copy.deepcopy(rng.choice(ODD)))
    return data, f"{kind} {'.'.join(map(str, path))}"


def check(data, source: str) -> str | None:
    """The error line `sparsity plan` would print, or None if the spec plans."""
    try:
        plan.expand(spec.parse(data, source), "/tmp/unused-fuzz", source)
    except SpecError as e:
        return str(e)
    return None


def assert_one_line(message: str, source: str, what: str) -> None:
    # the longest: an unknown Transformer option lists its 30 allowed keys (about 420 characters and the path)
    assert "\n" not in message and len(message) < 600, f"{what}: {message[:300]!r}"
    assert message.startswith(f"{source}: "), f"{what}: {message}"
    if not message[len(source) + 2 :].startswith(FILE_ONLY):
        assert ONE_LINE.match(message), f"{what}: no key named in {message!r}"


def test_mutated_specs_are_refused_with_one_line_or_plan():
    rng = random.Random(SEED)
    originals = {os.path.basename(p): yaml.safe_load(open(p)) for p in BUNDLED}
    refused = planned = 0
    for i in range(DATA_MUTATIONS):
        name = rng.choice(sorted(originals))
        data, what = mutate(originals[name], rng)
        message = check(data, name)  # anything but a SpecError fails the test here, with its traceback
        if message is None:
            planned += 1
        else:
            refused += 1
            assert_one_line(message, name, f"#{i} {name}: {what}")
    print(f"fuzz (data): {DATA_MUTATIONS} mutations, {refused} refused, {planned} planned")
    assert refused > DATA_MUTATIONS // 2 and planned > 0  # the mutations do reach both outcomes


def test_mutated_spec_files_are_refused_with_one_line_or_plan(tmp_path):
    rng = random.Random(SEED + 1)
    texts = {os.path.basename(p): open(p, "rb").read() for p in BUNDLED}
    refused = planned = 0
    for i in range(TEXT_MUTATIONS):
        name = rng.choice(sorted(texts))
        raw = bytearray(texts[name])
        lines = raw.split(b"\n")
        kind = rng.choice(["truncate", "byte", "duplicate line", "indent", "bracket"])
        at = rng.randrange(len(raw))
        if kind == "truncate":
            raw = raw[:at]
        elif kind == "byte":
            raw[at] = rng.choice(b"\xff\x00[]{}:&*!|>-#'\" \t")
        elif kind == "duplicate line":
            j = rng.randrange(len(lines))
            raw = b"\n".join(lines[: j + 1] + lines[j:])
        elif kind == "indent":
            j = rng.randrange(len(lines))
            raw = b"\n".join(lines[:j] + [b"  " + lines[j]] + lines[j + 1 :])
        else:
            raw = raw[:at] + b"[" * rng.choice([1, 50, 500]) + raw[at:]
        path = tmp_path / name
        path.write_bytes(bytes(raw))
        try:
            plan.expand(spec.load(str(path)), "/tmp/unused-fuzz", str(path))
            planned += 1
        except SpecError as e:
            refused += 1
            assert_one_line(str(e), str(path), f"#{i} {name}: {kind} at {at}")
    print(f"fuzz (text): {TEXT_MUTATIONS} mutations, {refused} refused, {planned} planned")
    assert refused > TEXT_MUTATIONS // 3


@pytest.mark.slow
def test_refused_specs_through_the_cli_exit_2_and_write_nothing(tmp_path):
    rng = random.Random(SEED + 2)
    originals = {os.path.basename(p): yaml.safe_load(open(p)) for p in BUNDLED}
    storage = tmp_path / "store"
    tried = 0
    while tried < CLI_SAMPLE:
        name = rng.choice(sorted(originals))
        data, what = mutate(originals[name], rng)
        source = str(tmp_path / name)
        if check(data, source) is None:
            continue  # a spec that plans would start training under `run`
        with open(source, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        command = "run" if tried % 2 else "plan"
        result = sparsity_cli(command, source, "--storage", str(storage), timeout=120)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, f"{name}: {what}: {result.stderr[-2000:]}"
        assert lines[0].startswith("sparsity: error: "), lines[0]
        assert_one_line(lines[0][len("sparsity: error: ") :], source, f"{name}: {what}")
        assert not storage.exists(), f"{command} wrote to storage for a refused spec ({what})"
        tried += 1
