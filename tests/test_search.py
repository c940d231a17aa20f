"""The combinatorial search for the sparsest network (papers/sparsest-models.md §3; issue 15): phase 1's
structures masked inside the width-16 model, phase 2's eligible masks, the structure phase 2 follows from, the
bundled searches' sizes, the spec's checks, and a miniature search as a real Ray sweep that resumes after its
driver is killed between the phases. The eligible-mask enumeration itself: tests/test_eligible.py."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from methods import eligible
from sweep import plan, search, spec
from trainables.packing import loop as pack_loop
from trainables.packing.pack import Pack, pack_id
from trainables.tasks.cubist import stored_init
from trainables.training import loop as unpacked_loop
from trainables.training import structure
from trainables.training.session import LocalSession

SPECS = os.path.join(os.path.dirname(__file__), "..", "sweep", "specs")
EXE = os.path.join(os.path.dirname(sys.executable), "sparsity")


def search_spec(name="search", **search_options):
    return {
        "name": name,
        "task": "cubist_spiral",
        "task_options": {"init": "bench95", "bias_mask": "out_degree", "epochs": 1, "eval_every": 390},
        "search": {"target": 0.95, **search_options},
    }


def expand(tmp_path, data):
    return plan.expand(spec.parse(data, "search.yaml"), str(tmp_path / data["name"]))


# -- phase 1: a structure inside the width-16 model ---------------------------------------------------------------
def _blocks_hold(weights, biases, widths, init):
    """Each layer's top-left block holds the stored init's values; everything else is exactly zero."""
    for (w, b), (w0, b0), inp, out in zip(zip(weights, biases), init, widths, widths[1:]):
        assert torch.equal(w[:out, :inp], w0[:out, :inp])
        assert torch.count_nonzero(w) == torch.count_nonzero(w[:out, :inp])
        assert torch.equal(b[:out], b0[:out]) and torch.count_nonzero(b[out:]) == 0


def test_phase1_block_starts_from_the_width16_init_and_all_else_stays_zero(tmp_path):
    trials = [t for t in expand(tmp_path, search_spec(max_width=3)) if t.method_config["active_d1"] == 3]
    trial = next(t for t in trials if (t.method_config["active_d2"], t.method_config["active_d3"]) == (2, 1))
    init = stored_init("bench95")
    _, model, _, _ = unpacked_loop.build(trial, torch.device("cpu"))
    linear = structure.chain(model)
    assert [tuple(x.weight.shape) for x in linear] == [(16, 2), (16, 16), (16, 16), (1, 16)]  # the width-16 model
    widths = (2, 3, 2, 1, 1)
    _blocks_hold([x.weight for x in linear], [x.bias for x in linear], widths, init)
    assert trial.target_nnz == 2 * 3 + 3 * 2 + 2 * 1 + 1 and trial.target_sparsity == pytest.approx(1 - 15 / 560)

    seen = []

    # the loop builds its own model: watch that one through the sparsifier it hands to on_step
    def watch(step, loss, lr, s):
        if step in (1, 60):
            outside = []
            for w, inp, out in zip(s.params.values(), widths, widths[1:]):
                outside.append(int(torch.count_nonzero(w.detach()).item()) - int(torch.count_nonzero(w[:out, :inp])))
            seen.append(outside)

    unpacked_loop.run_trial(trial, LocalSession(str(tmp_path / "run")), max_steps=60, on_step=watch)
    assert seen == [[0, 0, 0, 0], [0, 0, 0, 0]]


def test_phase1_and_phase2_packed_keep_every_member_inside_its_own_block(tmp_path):
    trials = expand(tmp_path, search_spec(max_width=2, structure=[2, 2, 1]))
    phase1 = [t for t in trials if t.stage == search.PHASE1]
    phase2 = [t for t in trials if t.stage == search.PHASE2]
    assert len(phase1) == 8 and len(phase2) == 4 * 4 * 1  # 2->2: 4 eligible masks, 2->1: 1
    assert len(phase2) == eligible.total(2, 2) * eligible.total(2, 2) * eligible.total(2, 1)
    init = stored_init("bench95")
    _, model, sparsifier, _ = pack_loop.build(Pack(pack_id(phase1), tuple(phase1)), torch.device("cpu"))
    sparsifier.apply_masks()
    linear = structure.chain(model)
    for k, t in enumerate(phase1):
        c = t.method_config
        widths = (2, c["active_d1"], c["active_d2"], c["active_d3"], 1)
        _blocks_hold([x.weight[k] for x in linear], [x.bias[k] for x in linear], widths, init)
    _, model, sparsifier, _ = pack_loop.build(Pack(pack_id(phase2), tuple(phase2)), torch.device("cpu"))
    sparsifier.apply_masks()
    linear = structure.chain(model)
    counted = structure.measure(model, len(phase2))
    for k, t in enumerate(phase2):
        c = t.method_config
        patterns = []
        for layer, (inp, out) in enumerate([(2, 2), (2, 2), (2, 1)]):
            rows = eligible.mask(inp, out, c[f"w{layer + 1}_nnz"], c[f"w{layer + 1}_mask"])
            patterns.append(torch.tensor(eligible.to_matrix(rows, inp), dtype=torch.bool))
        for x, pattern in zip(linear, patterns):
            inp, out = pattern.shape[1], pattern.shape[0]
            assert torch.equal(x.weight[k][:out, :inp] != 0, pattern)
            assert torch.count_nonzero(x.weight[k]) == int(pattern.sum())
        assert counted[k]["nnz_weights"] == t.target_nnz  # hidden masks + the dense 1-weight classifier
        assert torch.count_nonzero(linear[3].weight[k]) == 1


def test_phase2_from_a_stored_init_trains_its_structure_natively_with_the_masked_models_numbers(tmp_path):
    """With a stored init, phase 2's model is the structure itself (sweep/plan.native_structure): it starts from the
    same values as the masked width-16 model's active block and trains to the same numbers up to float rounding."""
    parsed = spec.parse(search_spec(max_width=3, structure=[3, 2, 2]), "search.yaml")
    trials = plan.search_masks(parsed, str(tmp_path / "s"), (3, 2, 2))
    native = trials[len(trials) // 2]
    assert [native.task_options[d] for d in ("d1", "d2", "d3")] == [3, 2, 2] and native.task_options["width"] == 16
    masked = dataclasses.replace(
        native, trial_id=native.trial_id + "-w16", task_options={**native.task_options, "d1": 0, "d2": 0, "d3": 0}
    )
    runs = {}
    for name, trial in (("native", native), ("masked", masked)):
        seen = {"loss": []}

        def watch(step, loss, lr, s, seen=seen):
            seen["loss"].append(loss)
            if step == 300:
                seen["weights"] = [w.detach().clone() for w in s.params.values()]

        unpacked_loop.run_trial(trial, LocalSession(str(tmp_path / name)), max_steps=300, on_step=watch)
        runs[name] = seen
    assert runs["native"]["loss"] == pytest.approx(runs["masked"]["loss"], rel=1e-5, abs=1e-7)
    widths = (2, 3, 2, 2, 1)
    for w, v, inp, out in zip(runs["native"]["weights"], runs["masked"]["weights"], widths, widths[1:]):
        assert tuple(w.shape) == (out, inp)
        assert torch.allclose(w, v[:out, :inp], rtol=1e-5, atol=1e-6)
        assert torch.count_nonzero(v) == torch.count_nonzero(v[:out, :inp])  # nothing outside the block
    drawn = spec.parse({**search_spec(structure=[3, 2, 2]), "task_options": {"bias_mask": "out_degree"}}, "s.yaml")
    assert plan.search_masks(drawn, str(tmp_path / "d"), (3, 2, 2))[0].task_options["d1"] == 0  # drawn: width 16


# -- phase 2 follows from phase 1 -------------------------------------------------------------------------------
def row(d, value, status="completed"):
    return {"active_d1": d[0], "active_d2": d[1], "active_d3": d[2], "value": value, "status": status}


def test_choose_the_fewest_dense_parameters_that_reach_the_target_best_over_hyperparameters():
    rows = [
        row((3, 3, 3), 0.97),  # 37 parameters
        row((3, 2, 2), 0.93),
        row((3, 2, 2), 0.951),  # 26: its best run over the hyper-parameters reaches 95 %
        row((2, 2, 2), 0.94),  # 19: never reaches it
        row((2, 2, 2), 0.99, status="failed"),  # a failed run does not count
        row((1, 1, 1), float("nan")),
    ]
    choice = search.choose(rows, 0.95, 2, 1)
    assert choice["structure"] == [3, 2, 2] and choice["params"] == 26 and choice["weights"] == 18
    assert choice["accuracy"] == 0.951 and choice["structures_reaching"] == 2 and choice["runs"] == 4


def test_choose_breaks_a_tie_in_parameters_by_accuracy_then_by_order():
    # (3, 2, 2) and (2, 3, 2): both 18 weights + 8 biases
    assert search.params((3, 2, 2), 2, 1) == search.params((2, 3, 2), 2, 1) == 26
    rows = [row((3, 2, 2), 0.955), row((2, 3, 2), 0.96), row((3, 3, 3), 0.99)]
    assert search.choose(rows, 0.95, 2, 1)["structure"] == [2, 3, 2]
    rows = [row((3, 2, 2), 0.96), row((2, 3, 2), 0.96)]
    assert search.choose(rows, 0.95, 2, 1)["structure"] == [2, 3, 2]  # equal: the first in (d1, d2, d3) order
    none = search.choose([row((1, 1, 1), 0.6), row((2, 1, 1), 0.7)], 0.95, 2, 1)
    assert none["structure"] is None and none["best"] == [[2, 1, 1], 0.7]


def test_a_recorded_choice_plans_phase2_and_leaves_the_plan_hash_alone(tmp_path):
    from sweep import runner

    data = search_spec(max_width=2)
    parsed = spec.parse(data, "s.yaml")
    folder = str(tmp_path / "search")
    before = plan.expand(parsed, folder)
    assert {t.stage for t in before} == {search.PHASE1}
    os.makedirs(folder)
    search.record(folder, {"structure": [2, 2, 1]})
    after = plan.expand(parsed, folder)
    phase2 = [t for t in after if t.stage == search.PHASE2]
    assert phase2 and all(t.resolved for t in phase2) and len(after) == len(before) + len(phase2)
    assert runner.plan_hash(after) == runner.plan_hash(before)
    assert len({t.trial_id for t in after}) == len(after)


# -- the bundled searches ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, phase1, structure, phase2",
    [
        ("sparsest_search_fixed_95", 558, (3, 2, 2), 2_496),
        ("sparsest_search_fixed_995", 2_034, (6, 3, 2), 70_584),
        ("sparsest_search_random_95", 24_576, (3, 3, 3), 155_952),
        ("sparsest_search_random_995", 24_576, (7, 3, 3), 189_624),
    ],
)
def test_bundled_search_sizes(tmp_path, name, phase1, structure, phase2):
    parsed = spec.load(os.path.join(SPECS, f"{name}.yaml"))
    assert tuple(parsed.search.expected_structure) == structure
    assert len(plan.search_structures(parsed, str(tmp_path))) == phase1
    assert plan.phase2_size(parsed, structure) == phase2


def test_bundled_slice_is_the_studys_12774_runs(tmp_path):
    parsed = spec.load(os.path.join(SPECS, "sparsest_slice_fixed_95.yaml"))
    trials = plan.expand(parsed, str(tmp_path / "slice"))
    stages = plan.stage_of(trials)
    assert {s: len(t) for s, t in stages.items()} == {"main": 9_720, search.PHASE1: 558}
    assert len(trials) + plan.phase2_size(parsed, (3, 2, 2)) == 12_774
    masks = plan.search_masks(parsed, str(tmp_path / "slice"), (3, 2, 2))
    assert len(masks) == 2_496 and len({t.trial_id for t in masks}) == 2_496
    assert {t.target_nnz for t in masks} == set(range(8 + 2, 16 + 2 + 1))  # hidden 8..16, the 2-weight classifier


def test_the_studys_95_percent_phase2_counts_per_hidden_nnz():
    """§3.5: masks per hidden-weight NNZ of the random-init 95 % search inside (3, 3, 3)."""
    parsed = spec.load(os.path.join(SPECS, "sparsest_search_random_95.yaml"))
    by_nnz = {}
    for combo in search.mask_combos(parsed.search, (3, 3, 3), 2):
        total = sum(nnz for nnz, _ in combo)
        by_nnz[total] = by_nnz.get(total, 0) + 1
    assert by_nnz == {
        9: 2, 10: 39, 11: 290, 12: 1100, 13: 2580, 14: 4207, 15: 5120, 16: 4854,
        17: 3684, 18: 2275, 19: 1152, 20: 478, 21: 160, 22: 42, 23: 8, 24: 1,
    }  # fmt: skip


# -- bad input --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, key",
    [
        ({"search": {"target": 0.95, "structure": [3, 2]}}, "search.structure"),
        ({"search": {"target": 0.95, "structure": [3, 2, 17]}}, "search.structure"),
        ({"search": {"target": 0.95, "max_width": 17}}, "search.max_width"),
        ({"search": {"target": 0.95, "below_params": 5}}, "search.below_params"),
        ({"search": {"target": 1.5}}, "search.target"),
        ({"search": {"target": 0.95, "masks_per_nnz": [0, 6]}}, "search.masks_per_nnz"),
        ({"search": {"target": 0.95, "task_options": {"d1": 3}}}, "search.task_options.d1"),
        ({"search": {"target": 0.95, "task_options": {"lr": -1}}}, "search.task_options.lr"),
        ({"search": {"target": 0.95, "phase2_task_options": {"bias_mask": "none"}}}, "search.phase2_task_options"),
        ({"search": {"target": 0.95, "wdith": 16}}, "search.wdith"),
        ({"search": {}}, "search.target"),
        ({"methods": {"search_mask": {}}}, "methods.search_mask"),
    ],
)
def test_bad_search_sections_get_one_line_naming_the_key(change, key):
    data = {**search_spec(), **change}
    with pytest.raises(spec.SpecError) as e:
        spec.parse(data, "bad.yaml")
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"bad.yaml: {key}"), message


def test_the_search_needs_the_studys_bias_convention():
    data = search_spec()
    data["task_options"] = {**data["task_options"], "bias_mask": "none"}
    with pytest.raises(spec.SpecError, match="search.task_options.bias_mask: .*out_degree"):
        spec.parse(data, "bad.yaml")


# -- a miniature search, as a real Ray sweep --------------------------------------------------------------------
@pytest.mark.ray
def test_miniature_search_runs_both_phases_and_resumes_after_its_driver_is_killed_between_them(tmp_path):
    data = search_spec("mini", max_width=2, target=0.4)  # every structure reaches it: the smallest, (1, 1, 1)
    data["task_options"]["epochs"] = 1
    data["resources"] = {"pack": "auto"}
    path = tmp_path / "mini.yaml"
    path.write_text(json.dumps(data))
    storage = tmp_path / "store"
    folder = storage / "mini"
    command = [EXE, "run", str(path), "--storage", str(storage), "--num-cpus", "2"]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 240
    while not (folder / search.CHOICE_FILE).exists() and time.time() < deadline and driver.poll() is None:
        time.sleep(0.05)
    assert (folder / search.CHOICE_FILE).exists(), driver.communicate()[0].decode()[-3000:]
    os.killpg(driver.pid, signal.SIGKILL)  # phase 1 has ended and phase 2 is about to start
    driver.wait(timeout=30)
    time.sleep(2)
    trials_dir = folder / "results" / "trials"
    phase1_files = {f: os.stat(trials_dir / f).st_mtime_ns for f in os.listdir(trials_dir)}
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming sweep 'mini', stage 'search_structure'" in again.stdout, again.stdout
    assert all(os.stat(trials_dir / f).st_mtime_ns == t for f, t in phase1_files.items())  # phase 1 not re-run
    assert "phase 1 chose structure (1, 1, 1)" in again.stdout, again.stdout
    assert "9/9 trials finished" in again.stdout, again.stdout
    choice = json.loads((folder / search.CHOICE_FILE).read_text())
    assert choice["structure"] == [1, 1, 1] and choice["runs"] == 8

    from analysis.load import read_table

    rows = read_table(str(folder), "trials")
    assert len(rows) == 9 and rows["trial_id"].is_unique and set(rows["status"]) == {"completed"}
    masked = rows[rows["stage"] == search.PHASE2].iloc[0]
    assert masked["method"] == search.MASK_METHOD and masked["nnz_weights"] == 2 + 1 + 1 + 1
    status = subprocess.run([EXE, "status", str(folder)], capture_output=True, text=True, timeout=60)
    assert "9 trials planned; 9 completed" in status.stdout, status.stdout
