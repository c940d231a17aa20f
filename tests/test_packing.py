"""Packed trials (issue 12): K small trials as one stacked computation, each member as it would run alone.

In-process tests of the pack's loop against the unpacked loop (the same trials, one at a time), divergence,
a real SIGKILL of a process training a pack then its resume, grouping, and spec errors."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import torch

import methods
from sweep import packing, plan, spec
from tests.test_faults import Recording, identical
from trainables.packing import loop as pack_loop
from trainables.packing.pack import Pack, pack_id
from trainables.records import paths, results
from trainables.training import loop as unpacked_loop
from trainables.training.session import LocalSession, load_state

STEPS = 500


def trials_of(tmp_path, name="eq", task_options=None, method=None, sparsity=(0.9, 0.95), seeds=(0, 1), pack=1):
    data = {
        "name": name,
        "task": "cubist_spiral",
        "task_options": task_options or {"width": 16, "epochs": 2, "lr": [0.05, 0.1], "eval_every": 390},
        "methods": method
        or {"magnitude": {"begin_step": 50, "end_step": 600, "frequency": 25, "allocation": "global"}},
        "sparsity": list(sparsity),
        "seeds": list(seeds),
        "resources": {"pack": pack},
    }
    return plan.expand(spec.parse(data, "test.yaml"), str(tmp_path / name))


def masks_copy(sparsifier):
    return {n: m.clone() for n, m in sparsifier.masks().items()}


def run_unpacked(trials, tmp_path):
    """Each trial alone through the project's own loop: its masks and loss at every step up to STEPS."""
    record = {}
    for t in trials:
        seen = record[t.trial_id] = {}

        def on_step(step, loss, lr, sparsifier, seen=seen):
            if step <= STEPS:
                seen[step] = (masks_copy(sparsifier), loss)

        unpacked_loop.run_trial(t, LocalSession(str(tmp_path / "u" / t.trial_id)), on_step=on_step)
    return record


def run_packed(trials, tmp_path, folder="p"):
    seen = {}

    def on_step(step, losses, lrs, sparsifier):
        if step <= STEPS:
            seen[step] = (masks_copy(sparsifier), losses.clone())

    pack = Pack(pack_id(trials), tuple(trials))
    pack_loop.run_pack(pack, LocalSession(str(tmp_path / folder)), on_step=on_step)
    return pack, seen


def no_wall_time(state):
    """A state without its wall-clock times (the only numbers that differ between two runs)."""
    if isinstance(state, dict):
        return {k: no_wall_time(v) for k, v in state.items() if k != "wall_time_s"}
    if isinstance(state, list):
        return [no_wall_time(v) for v in state]
    return state


def sorted_rows(rows):
    return sorted(rows, key=lambda r: (r["trial_id"], r.get("metric", ""), r.get("step", 0), r.get("layer", "")))


@pytest.mark.parametrize(
    "method",
    [
        {"magnitude": {"begin_step": 50, "end_step": 600, "frequency": [25, 50], "allocation": "global"}},
        {"random": {"begin_step": 50, "end_step": 600, "frequency": 50, "allocation": "erk"}},
        {"magnitude": {"begin_step": 50, "end_step": 600, "frequency": [25, 50]}},
    ],
    ids=["magnitude-global", "random-erk", "magnitude-width3"],
)
def test_a_pack_of_8_trains_each_member_as_it_would_alone(tmp_path, method, request):
    # width 3 takes the members-last path of the stacked model (packing/model.py), width 16 batched matmuls
    width = 3 if "width3" in request.node.name else 16
    options = {"width": width, "epochs": 2, "lr": [0.05, 0.1], "eval_every": 390}
    trials = trials_of(tmp_path, task_options=options, method=method, seeds=(0, 1) if "random" in method else (0,))
    assert len(trials) == 8
    pack = Pack(pack_id(trials), tuple(trials))

    # identical initial weights and batch indices
    task, model, _, _ = pack_loop.build(pack, torch.device("cpu"))
    assert model.members_last == (width == 3)
    for k, t in enumerate(trials):
        alone_task, alone, _, _ = unpacked_loop.build(t, torch.device("cpu"))
        for name, param in alone.named_parameters():
            assert torch.equal(dict(model.named_parameters())[name][k], param), (t.trial_id, name)
        for step in (1, 2, 390, 391, 780):
            assert torch.equal(task.batch_indices(step)[k], alone_task.batch_indices(step))

    alone = run_unpacked(trials, tmp_path)
    pack, packed = run_packed(trials, tmp_path)
    for k, t in enumerate(trials):
        for step in range(1, STEPS + 1):  # the same masks after every step, updates included
            want, got = alone[t.trial_id][step][0], packed[step][0]
            for name in want:
                assert torch.equal(want[name], got[name][k]), (t.trial_id, step, name)
        want_loss, got_loss = alone[t.trial_id][STEPS][1], packed[STEPS][1][k].item()
        assert abs(got_loss - want_loss) <= 1e-5 * abs(want_loss), (t.trial_id, want_loss, got_loss)

    # the same trial ids and schema in every table, and the same rows up to float rounding
    sweep_dir = trials[0].sweep_dir
    for table in paths.TABLES:
        unpacked_rows = sorted_rows([r for t in trials for r in results.read_rows(t, table)])
        packed_rows = sorted_rows(results.read_unit(sweep_dir, pack.pack_id, table))
        assert [r["trial_id"] for r in packed_rows] == [r["trial_id"] for r in unpacked_rows]
        assert pq.read_schema(paths.result_file(sweep_dir, table, pack.pack_id)) == results.schema(
            table, trials[0].hp_columns
        )
        for a, b in zip(unpacked_rows, packed_rows):
            for key, value in a.items():
                if key == "wall_time_s":
                    continue
                if isinstance(value, float) and not math.isnan(value):
                    assert b[key] == pytest.approx(value, rel=1e-3, abs=2e-3), (table, key)
                else:
                    assert b[key] == value or (value != value and b[key] != b[key]), (table, key)


def test_a_diverging_member_ends_alone_and_changes_no_one_else(tmp_path):
    trials = trials_of(
        tmp_path,
        task_options={"width": 8, "epochs": 1, "lr": [0.05, 0.1, 1000.0], "eval_every": 130},
        method={"magnitude": {"begin_step": 50, "end_step": 300, "frequency": 25}},
    )
    blowup = [t for t in trials if t.task_options["lr"] == 1000.0]
    others = [t for t in trials if t.task_options["lr"] != 1000.0]
    assert len(blowup) == 4 and len(others) == 8
    members = others[:7] + blowup[:1]
    with_it = Pack("with", tuple(members))
    without = Pack("without", tuple(others[:7]))
    weights = {}  # the diverging member's weights after every step

    def on_step(step, losses, lrs, sparsifier):
        weights[step] = {n: p[7].detach().clone() for n, p in sparsifier.params.items()}

    pack_loop.run_pack(with_it, LocalSession(str(tmp_path / "a")), on_step=on_step)
    alone = unpacked_loop.run_trial(blowup[0], LocalSession(str(tmp_path / "alone")))
    diverged_at = alone["steps"]
    for step in range(diverged_at, max(weights) + 1):  # no optimizer update since: only its masks still shrink
        for name, w in weights[step].items():
            before = weights[diverged_at - 1][name]
            assert torch.equal(w, torch.where(w != 0, before, 0.0)), (step, name)

    rows = {table: results.read_unit(trials[0].sweep_dir, "with", table) for table in paths.TABLES}
    diverged = [r for r in rows["trials"] if r["trial_id"] == blowup[0].trial_id]
    assert [r["status"] for r in diverged] == ["diverged"] and math.isnan(diverged[0]["value"])
    assert diverged[0]["steps"] == alone["steps"]  # it diverged at the step it diverges at alone
    pack_loop.run_pack(without, LocalSession(str(tmp_path / "b")))
    for table in paths.TABLES:
        got = sorted_rows([r for r in rows[table] if r["trial_id"] != blowup[0].trial_id])
        want = sorted_rows(results.read_unit(trials[0].sweep_dir, "without", table))
        drop = lambda r: {k: v for k, v in r.items() if k != "wall_time_s"}  # noqa: E731
        assert [drop(r) for r in got] == [drop(r) for r in want], table
    assert all(r["status"] == "completed" for r in rows["trials"] if r["trial_id"] != blowup[0].trial_id)


KILLED = """
import sys
from sweep import plan, spec
from trainables.packing.loop import run_pack
from trainables.packing.pack import Pack, pack_id
from trainables.training.session import LocalSession
trials = plan.expand(spec.load(sys.argv[1]), sys.argv[2])
run_pack(Pack(pack_id(trials), tuple(trials)), LocalSession(sys.argv[3]))
"""


def test_a_pack_killed_with_sigkill_resumes_bit_identically(tmp_path, write_spec):
    path = write_spec(
        {
            "name": "killed",
            "task": "cubist_spiral",
            "task_options": {"width": 8, "epochs": 4, "lr": [0.05, 0.1], "eval_every": 130},
            "methods": {"magnitude": {"begin_step": 50, "end_step": 1000, "frequency": 50}},
            "sparsity": [0.9, 0.95],
            "seeds": [0, 1],
        }
    )
    trials = plan.expand(spec.load(path), str(tmp_path / "killed"))
    pack = Pack(pack_id(trials), tuple(trials))
    baseline = Recording(str(tmp_path / "baseline-ckpt"))
    elsewhere = tuple(dataclasses.replace(t, sweep_dir=str(tmp_path / "base")) for t in trials)
    pack_loop.run_pack(Pack(pack.pack_id, elsewhere), baseline)

    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, "-c", KILLED, path, str(tmp_path / "killed"), str(ckpt)])
    deadline = time.time() + 120
    while time.time() < deadline and not (ckpt / "state.pt").exists():
        time.sleep(0.05)
    time.sleep(0.3)  # mid-run, past its first checkpoint
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    killed_at = load_state(str(ckpt))["step"]
    assert 0 < killed_at < 1560, killed_at

    resumed = Recording(str(ckpt))
    pack_loop.run_pack(pack, resumed)
    final = max(baseline.states)
    identical(no_wall_time(resumed.states[final]), no_wall_time(baseline.states[final]), "state")
    for table in paths.TABLES:
        got = sorted_rows(results.read_unit(str(tmp_path / "killed"), pack.pack_id, table))
        want = sorted_rows(results.read_unit(str(tmp_path / "base"), pack.pack_id, table))
        drop = lambda r: {k: v for k, v in r.items() if k not in ("wall_time_s", "sweep_dir")}  # noqa: E731
        assert [drop(r) for r in got] == [drop(r) for r in want], table

    # a re-run of the finished pack trains nothing: its rows say every member finished
    before = {
        t: os.stat(paths.result_file(str(tmp_path / "killed"), t, pack.pack_id)).st_mtime_ns for t in paths.TABLES
    }
    again = Recording(str(tmp_path / "fresh-ckpt"))
    pack_loop.run_pack(pack, again)
    assert not again.states
    assert before == {
        t: os.stat(paths.result_file(str(tmp_path / "killed"), t, pack.pack_id)).st_mtime_ns for t in paths.TABLES
    }


def test_every_packable_method_selects_within_each_member(tmp_path):
    """The contract, packed: members of one pack (other targets, seeds, schedules) get the masks each would get
    alone from the same weights."""
    torch.manual_seed(0)
    alone_models = [
        torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)) for _ in range(3)
    ]
    from trainables.packing.model import stack_sequential

    packable = [name for name in methods.names() if methods.get(name).packable]
    assert {"dense", "magnitude", "random"} <= set(packable)
    for name in packable:
        cls = methods.get(name)
        configs = {
            "magnitude": [
                dict(begin_step=0, end_step=10, frequency=f, allocation=a)
                for f, a in [(1, "uniform"), (2, "global"), (5, "erk")]
            ],
        }.get(name)
        if name == "random":
            configs = [dict(begin_step=0, end_step=10, frequency=f, allocation="global") for f in (1, 2, 5)]
        members = [
            (cls.Config(**(configs[k] if configs else {})), (0.5, 0.7, 0.9)[k] if cls.targets_sparsity else 0.0, k)
            for k in range(3)
        ]
        if name == "magnitude":  # one pack ranks the same tensors together: one allocation per pack
            members = [
                (cls.Config(**{**configs[k], "allocation": "global"}), t, s) for k, (_, t, s) in enumerate(members)
            ]
        stacked = stack_sequential(alone_models)
        packed = cls.for_members(members)
        packed.prepare(stacked)
        singles = []
        for k, model in enumerate(alone_models):
            single = cls(*members[k])
            single.prepare(model)
            singles.append(single)
        for step in range(1, 11):
            packed.after_step(step)
            for k, single in enumerate(singles):
                single.after_step(step)
                for tensor, mask in single.masks().items():
                    assert torch.equal(packed.masks()[tensor][k], mask), (name, step, k, tensor)


def test_methods_that_cannot_pack_say_so_and_run_alone(tmp_path):
    trials = trials_of(
        tmp_path,
        task_options={"width": [3, 16], "epochs": 1, "lr": [0.05, 0.1], "eval_every": 390},
        method={
            "magnitude": {"begin_step": 50, "end_step": 300, "frequency": 50},
            "variational_dropout": {"weight": 1.0e-4},
        },
        sparsity=(0.9,),
        seeds=(0, 1, 2),
    )
    lay = packing.layout(trials, 4, slots=2, has_stages=False)
    assert lay.refusals == {"method variational_dropout cannot run packed": 12}
    assert sorted(len(p.members) for p in lay.packs) == [3, 3, 3, 3]  # 6 per width, at most 4 per pack, balanced
    for p in lay.packs:  # one shape per pack: the width never mixes; lr and seed do
        assert len({m.task_options["width"] for m in p.members}) == 1
        assert len({(m.task_options["lr"], m.seed) for m in p.members}) == len(p.members)
    assert {t.method for t in lay.singles} == {"variational_dropout"}
    assert sorted(t.trial_id for p in lay.packs for t in p.members) == sorted(
        t.trial_id for t in trials if t.method == "magnitude"
    )
    assert packing.layout(trials, 4, 2, False).unit_members() == lay.unit_members()  # stable names
    adam = trials_of(
        tmp_path,
        task_options={"width": 4, "epochs": 1, "optimizer": "adam"},
        method={"magnitude": {"begin_step": 50, "end_step": 300, "frequency": 25}},
        sparsity=(0.9,),
    )
    assert packing.layout(adam, "auto", 2, False).refusals == {
        "optimizer adam runs unpacked (the stacked optimizer is SGD)": 2
    }
    assert packing.pack_sizes(1000, "auto", 2) == [250] * 4
    assert packing.pack_sizes(100, "auto", 2) == [50, 50]
    assert packing.pack_sizes(20, "auto", 8) == [20]
    assert packing.pack_sizes(10, 4, 2) == [4, 3, 3]


@pytest.mark.parametrize("value", [0, -2, 1.5, "many", True, None])
def test_a_bad_pack_is_a_one_line_spec_error(value):
    with pytest.raises(spec.SpecError) as e:
        spec.parse(
            {"name": "x", "task": "cubist_spiral", "methods": {"dense": {}}, "resources": {"pack": value}}, "s.yaml"
        )
    assert str(e.value).startswith(
        "s.yaml: resources.pack: expected a count in [1, 65536] or auto"
    ) and "\n" not in str(e.value)


def test_plan_summarises_150000_trials(tmp_path):
    widths = list(range(3, 17))
    big = {
        "name": "big",
        "task": "cubist_spiral",
        "task_options": {"width": widths, "lr": [0.05, 0.1, 0.2], "lr_schedule": ["cosine", "multistep", "constant"]},
        "methods": {
            "magnitude": {"begin_step": 97, "end_step": 19303, "frequency": 97, "allocation": "global"},
            "random": {"begin_step": 97, "end_step": 19303, "frequency": 97, "allocation": "global"},
        },
        "sparsity": [round(0.5 + 0.02 * i, 2) for i in range(24)],
        "seeds": list(range(25)),
        "resources": {"pack": "auto"},
    }
    import yaml

    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(big))
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "sparsity"), "plan", str(path), "--storage", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("big: 151200 trials of task cubist_spiral")
    assert any("151200 trials as" in line and "Tune trials (pack: auto" in line for line in lines)
    assert any(line.split()[:2] == ["magnitude", "75600"] and "14 task shapes" in line for line in lines)
    assert len(lines) < 20  # a summary, not a row per trial


def test_plan_says_once_which_trials_cannot_pack(write_spec, tmp_path):
    path = write_spec(
        {
            "name": "mixed",
            "task": "cubist_spiral",
            "task_options": {"width": 4, "epochs": 1, "lr": [0.05, 0.1]},
            "methods": {"magnitude": {"begin_step": 50, "end_step": 300}, "l0": {"weight": 1.0e-4}},
            "sparsity": [0.9],
            "seeds": [0, 1, 2],
            "resources": {"pack": "auto"},
        }
    )
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "sparsity"), "plan", path, "--storage", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.count("cannot run packed") == 1
        and "6 trials run unpacked: method l0 cannot run packed" in out.stdout
    )
    assert "12 trials as 7 Tune trials" in out.stdout, out.stdout  # 6 magnitude trials in one pack, 6 l0 alone


@pytest.mark.parametrize("permuted_rows", [2**22, 0], ids=["per-seed-epochs", "gather"])
def test_a_packs_batches_are_its_members_own(monkeypatch, permuted_rows):
    """Both ways of building a pack's batches (few seeds: per-seed permuted epochs; many: a gather) give member k
    exactly the batch it gets alone, across an epoch boundary."""
    from trainables.tasks import supervised

    monkeypatch.setattr(supervised, "PERMUTED_ROWS", permuted_rows)
    from trainables.tasks.cubist import CubistOptions, CubistSpiral

    members = [(CubistOptions(width=3, epochs=2, lr=lr), seed) for seed in (0, 3, 0, 7) for lr in (0.05, 0.1)]
    packed = CubistSpiral.packed(members, torch.device("cpu"))
    alone = [CubistSpiral(o, seed, torch.device("cpu")) for o, seed in members]
    for step in (1, 2, 389, 390, 391, 780):
        x, y = packed.batch(step)
        for k, task in enumerate(alone):
            want_x, want_y = task.batch(step)
            assert torch.equal(x[k], want_x) and torch.equal(y[k], want_y), (step, k)
