"""Dependent stages (the lottery-ticket / scratch study): planning, artifacts, how children start, fixed masks,
sparsity-aware init, in-process with real trials on the Cubist Spiral."""

from __future__ import annotations

import dataclasses
import os

import pyarrow.dataset as ds
import pytest
import torch
import yaml
from torch import nn

import methods
from sweep import plan, spec
from sweep.spec import SpecError
from tests.conftest import SPECS
from trainables.records import artifacts, paths
from trainables.training import reinit
from trainables.training.loop import build, run_trial
from trainables.training.session import LocalSession

VARIANTS = ["scratch_e", "scratch_b", "lottery", "sparsity_aware_init", "scratch_b_sparsity_aware_init"]


def stage_spec(**stage) -> dict:
    data = yaml.safe_load(open(os.path.join(SPECS, "tiny.yaml")))
    data["methods"] = {"magnitude": data["methods"]["magnitude"], "dense": {}}
    data["stages"] = {"reinit": {"from": "main", "variants": VARIANTS, **stage}}
    return data


def expand(data: dict, folder) -> dict[str, list]:
    trials = plan.expand(spec.parse(data, "s.yaml"), str(folder))
    return plan.stage_of(trials)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The parent (magnitude to 90%) and its children, trained in-process one after the other."""
    folder = tmp_path_factory.mktemp("stages")
    stages = expand(stage_spec(rewind_step=[0, 50]), folder)
    (parent,) = stages["main"][:1]
    for trial in stages["main"] + stages["reinit"]:
        run_trial(trial, LocalSession(str(folder / "ck" / trial.trial_id)))
    children = {(t.init["variant"], t.init["rewind_step"]): t for t in stages["reinit"]}
    return folder, parent, children


def test_children_per_parent_and_variant_skip_dense_parents(tmp_path):
    stages = expand(stage_spec(rewind_step=[0, 50]), tmp_path)
    assert [t.method for t in stages["main"]] == ["magnitude", "dense"]
    children = stages["reinit"]
    assert len(children) == 6  # 5 variants, lottery twice (two rewind steps); none for the dense parent
    parent = stages["main"][0]
    assert {c.parent_trial_id for c in children} == {parent.trial_id} and {c.stage for c in children} == {"reinit"}
    assert {c.method for c in children} == {"fixed_mask"} and {c.target_sparsity for c in children} == {0.9}
    assert parent.keep_steps == (50,)  # the parent keeps its step-50 weights for the late-rewinding child
    epochs = {c.init["variant"]: c.task_options["epochs"] for c in children}
    assert epochs["scratch_b"] == epochs["scratch_b_sparsity_aware_init"] == 2 * parent.task_options["epochs"]
    assert epochs["scratch_e"] == epochs["lottery"] == parent.task_options["epochs"]
    seeds = {c.init["init_seed"] for c in children}
    assert len(seeds) == len(children) and parent.seed not in seeds  # scratch means another initialisation
    again = expand(stage_spec(rewind_step=[0, 50]), tmp_path)["reinit"]
    assert [c.trial_id for c in again] == [c.trial_id for c in children]  # run identity is stable


@pytest.mark.parametrize(
    "stage, message",
    [
        ({"variants": ["lotery"]}, "stages.reinit.variants[0]: unknown variant 'lotery'"),
        ({"from": "prune"}, "stages.reinit.from: unknown stage 'prune'"),
        ({"methods": ["random"]}, "stages.reinit.methods[0]: 'random' trains no trial of stage main"),
        ({"rewind_step": 5000}, "stages.reinit.rewind_step: 5000 is not before the end"),
        ({"time_multiplier": 0}, "stages.reinit.time_multiplier: 0.0 is outside (0, 100]"),
        ({"variants": []}, "stages.reinit.variants: at least one variant"),
        ({"colour": "red"}, "stages.reinit.colour: unknown key"),
    ],
)
def test_bad_stages_are_one_line_errors(tmp_path, stage, message):
    data = stage_spec(**stage)
    with pytest.raises(SpecError) as e:
        plan.expand(spec.parse(data, "s.yaml"), str(tmp_path), "s.yaml")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_stage_named_main_is_refused(tmp_path):
    data = stage_spec()
    data["stages"] = {"main": data["stages"]["reinit"]}
    with pytest.raises(SpecError, match="not 'main'"):
        spec.parse(data, "s.yaml")


def test_every_trial_keeps_its_initial_weights_and_final_masks(trained):
    folder, parent, _ = trained
    sweep = parent.sweep_dir
    init = artifacts.load_weights(sweep, parent.trial_id, 0)
    initial = {}
    build(parent, torch.device("cpu"), initial)  # the same trial built again: its step-0 weights
    assert init.keys() == initial.keys() and all(torch.equal(init[k], initial[k]) for k in init)
    masks = artifacts.load(sweep, parent.trial_id, artifacts.MASKS)
    layers = ds.dataset(paths.table_dir(sweep, "layers")).to_table().to_pandas()
    mine = layers[layers["trial_id"] == parent.trial_id].set_index("layer")
    assert {k: int(m.sum()) for k, m in masks.items()} == mine["nonzero"].to_dict()


def test_a_lottery_child_starts_from_its_parents_saved_step0_weights_exactly(trained):
    folder, parent, children = trained
    child = children["lottery", 0]
    saved = artifacts.load_weights(parent.sweep_dir, parent.trial_id, 0)
    masks = artifacts.load(parent.sweep_dir, parent.trial_id, artifacts.MASKS)
    _, model, _, _ = build(child, torch.device("cpu"))
    state = model.state_dict()
    for name, value in saved.items():
        expected = value * masks[name] if name in masks else value
        assert torch.equal(state[name], expected), name
    own = artifacts.load_weights(child.sweep_dir, child.trial_id, 0)  # what the child itself recorded
    assert all(torch.equal(own[k], saved[k]) for k in saved)


def test_late_rewinding_starts_from_the_parents_weights_after_step_k(trained, tmp_path):
    folder, parent, children = trained
    saved = artifacts.load_weights(parent.sweep_dir, parent.trial_id, 50)
    # the parent retrained for exactly 50 steps has those weights
    straight = plan.expand(spec.parse(stage_spec(rewind_step=[0, 50]), "s.yaml"), str(tmp_path))[0]
    states = []
    run_trial(straight, LocalSession(str(tmp_path / "ck"), on_report=states.append), max_steps=50)
    _, model, _, _ = build(children["lottery", 50], torch.device("cpu"))
    masks = artifacts.load(parent.sweep_dir, parent.trial_id, artifacts.MASKS)
    rewound = model.state_dict()
    checkpoint = torch.load(tmp_path / "ck" / "state.pt", weights_only=True)["engine"]["model"]
    for name, value in saved.items():
        assert torch.equal(value, checkpoint[name]), name
        assert torch.equal(rewound[name], value * masks[name] if name in masks else value), name


def test_masks_stay_fixed_through_training_and_pruned_weights_stay_zero(trained, tmp_path):
    folder, parent, children = trained
    masks = artifacts.load(parent.sweep_dir, parent.trial_id, artifacts.MASKS)
    child = children["scratch_e", 0]
    seen = []

    def check(step, loss, lr, sparsifier):
        now = sparsifier.masks()
        assert all(torch.equal(now[k], masks[k]) for k in masks), step
        assert all((p[~masks[n]] == 0).all() for n, p in sparsifier.params.items()), step
        seen.append(step)

    moved = dataclasses.replace(child, sweep_dir=str(tmp_path / "again"))
    # the parent's artifacts, where the moved child looks for them
    masks_file = artifacts.MASKS
    artifacts.save(
        moved.sweep_dir, parent.trial_id, masks_file, artifacts.load(parent.sweep_dir, parent.trial_id, masks_file)
    )
    run_trial(moved, LocalSession(str(tmp_path / "ck")), on_step=check)
    assert seen == list(range(1, 781))
    final = artifacts.load(moved.sweep_dir, moved.trial_id, artifacts.MASKS)
    assert all(torch.equal(final[k], masks[k]) for k in masks)


def test_scratch_b_trains_the_multiplied_number_of_steps_and_rows_name_their_parent(trained):
    folder, parent, children = trained
    trials = ds.dataset(paths.table_dir(parent.sweep_dir, "trials")).to_table().to_pandas().set_index("trial_id")
    assert trials.loc[parent.trial_id, "steps"] == 780 and trials.loc[parent.trial_id, "stage"] == "main"
    assert pd_isna(trials.loc[parent.trial_id, "variant"])
    for (variant, rewind), child in children.items():
        row = trials.loc[child.trial_id]
        assert row["stage"] == "reinit" and row["parent_trial_id"] == parent.trial_id and row["variant"] == variant
        assert row["method"] == "fixed_mask" and row["rewind_step"] == rewind and row["status"] == "completed"
        assert row["steps"] == (1560 if variant.startswith("scratch_b") else 780), variant
        assert abs(row["sparsity"] - trials.loc[parent.trial_id, "sparsity"]) < 1e-12


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_sparsity_aware_init_has_the_stated_variance(sparsity):
    """Sample variances of re-drawn weights match the study's formulas within 5% (fixed seed; each tensor has
    thousands of kept weights, so the estimate's own error is about 2%)."""
    torch.manual_seed(0)
    model = nn.ModuleDict({"conv": nn.Conv2d(64, 128, 3), "fc": nn.Linear(512, 256), "emb": nn.Embedding(1000, 64)})
    generator = torch.Generator().manual_seed(1)
    masks = {f"{name}.weight": torch.rand(m.weight.shape, generator=generator) >= sparsity for name, m in model.items()}
    reinit.sparsity_aware_init_(model, masks)
    for name, module in model.items():
        w, mask = module.weight.detach(), masks[f"{name}.weight"]
        nnz = int(mask.sum())
        if name == "conv":
            expected = 2.0 / (nnz / 64)  # N(0, sqrt(2 / (nnz / in_channels))): std^2
        elif name == "fc":
            expected = (6.0 / (nnz / 256 + nnz / 512)) / 3.0  # U(-limit, limit) has variance limit^2 / 3
        else:
            s = 1.0 - nnz / mask.numel()
            expected = 1.0 / (64 * (1.0 - s))  # N(0, (d (1 - s))^-0.5): std^2
        kept = w[mask]
        assert kept.var().item() == pytest.approx(expected, rel=0.05), name
        assert abs(kept.mean().item()) < 0.05 * expected**0.5, name  # 4 standard errors
    # the dense limit reproduces the usual initialisers
    assert reinit.glorot_limit(512 * 256, 512, 256) == pytest.approx((6 / (512 + 256)) ** 0.5)
    assert reinit.init_std_conv(128 * 64 * 9, 64) == pytest.approx((2 / (128 * 9)) ** 0.5)


def test_fixed_mask_method_is_registered_and_takes_given_masks():
    cls = methods.get("fixed_mask")
    model = nn.Linear(4, 3)
    sparsifier = cls(cls.Config(), target=0.5, seed=0)
    sparsifier.prepare(model)
    mask = torch.tensor([[1, 0, 1, 0]] * 3, dtype=torch.bool)
    sparsifier.set_masks({"weight": mask})
    assert torch.equal(sparsifier.masks()["weight"], mask) and (model.weight[~mask] == 0).all()
    with torch.no_grad():
        model.weight.add_(1.0)
    sparsifier.after_step(1)
    assert (model.weight[~mask] == 0).all() and sparsifier.sparsity() == 0.5


def test_report_has_the_lottery_ticket_table(trained):
    from analysis.report import write_report

    folder, parent, _ = trained
    report = write_report(parent.sweep_dir)
    text = open(os.path.join(report.folder, "README.md")).read()
    assert "## Lottery ticket and scratch retraining" in text and os.path.exists(f"{report.folder}/lottery.png")
    header = next(line for line in text.splitlines() if line.startswith("| mask source"))
    for column in ("pruned", "scratch_e", "scratch_b", "sparsity_aware_init", "lottery", "lottery (rewind 50)"):
        assert f"| {column} |" in header, column
    assert "| reinit: magnitude at 0.9 |" in text
    assert "fixed_mask" not in report.markdown  # the method x sparsity table is of the first stage only
    assert "At sparsity >= 0.8 the pruned model beats scratch_e in" in text


STAGE_SPEC = """
name: staged
task: cubist_spiral
task_options: {width: 16, epochs: 2, eval_every: 390}
methods:
  magnitude: {begin_step: 100, end_step: 600, frequency: 50}
sparsity: [0.8, 0.9]
failure: {max_failures: 0}
stages:
  reinit: {from: main, variants: [scratch_e, lottery]}
"""


@pytest.mark.ray
def test_stages_on_ray_wait_for_parents_skip_orphans_and_resume(tmp_path):
    """On a real local Ray: a parent that fails leaves its children unlaunched (skipped, said so); the same
    command again resumes the failed parent, then runs the children it now has; a third run re-runs nothing."""
    from sweep import runner
    from tests.conftest import sparsity_cli

    path = tmp_path / "staged.yaml"
    path.write_text(STAGE_SPEC)
    parsed = spec.load(str(path))
    trials = plan.expand(parsed, paths.sweep_dir(str(tmp_path), "staged"))
    broken = trials[0]
    runner.write_manifest(broken.sweep_dir, trials, str(path))  # as a first, interrupted run leaves it
    squatter = paths.result_file(broken.sweep_dir, "evals", broken.trial_id)
    os.makedirs(squatter)  # every write of this parent's rows fails: it errors out
    first = sparsity_cli("run", str(path), "--storage", str(tmp_path), "--num-cpus", "2")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "2 trials skipped: their parent did not complete" in first.stdout, first.stdout
    assert "3/6 trials finished" in first.stdout and "2 of a later stage not run" in first.stdout

    os.rmdir(squatter)
    second = sparsity_cli("run", str(path), "--storage", str(tmp_path), "--num-cpus", "2")
    assert second.returncode == 0 and "6/6 trials finished" in second.stdout, second.stdout + second.stderr
    table = paths.table_dir(broken.sweep_dir, "trials")
    rows = ds.dataset(table).to_table().to_pandas().set_index("trial_id")
    assert (rows["status"] == "completed").all() and len(rows) == 6
    children = rows[rows["stage"] == "reinit"]
    assert sorted(children["parent_trial_id"]) == sorted([trials[0].trial_id, trials[1].trial_id] * 2)
    for child, row in children.iterrows():  # each child started after its parent had finished
        parent_done = os.stat(paths.result_file(broken.sweep_dir, "trials", row["parent_trial_id"])).st_mtime
        assert os.stat(paths.result_file(broken.sweep_dir, "evals", child)).st_mtime > parent_done

    stamps = {f: os.stat(os.path.join(table, f)).st_mtime_ns for f in os.listdir(table)}
    third = sparsity_cli("run", str(path), "--storage", str(tmp_path), "--num-cpus", "2")
    assert third.returncode == 0 and "6/6 trials finished" in third.stdout, third.stdout + third.stderr
    assert "resuming sweep 'staged', stage 'reinit'" in third.stdout
    assert {f: os.stat(os.path.join(table, f)).st_mtime_ns for f in os.listdir(table)} == stamps


def test_parents_best_keeps_the_children_of_the_best_configuration_per_sparsity(tmp_path):
    """`parents: best` (the study's mask sources): per method and sparsity, the configuration with the best
    mean over seeds; children of parents that did not complete are never launched."""
    from sweep import runner
    from trainables.records import results

    data = stage_spec(variants=["lottery"], parents="best")
    data["methods"] = {"magnitude": {"begin_step": 100, "end_step": 600, "frequency": [50, 100]}}
    data["sparsity"], data["seeds"] = [0.8, 0.9], [0, 1]
    trials = plan.expand(spec.parse(data, "s.yaml"), str(tmp_path))
    parents = [t for t in trials if t.stage == "main"]
    children = [t for t in trials if t.stage == "reinit"]
    assert len(parents) == len(children) == 8
    value = {50: {0: 0.9, 1: 0.72}, 100: {0: 0.8, 1: 0.85}}  # means: 0.81 for frequency 50, 0.825 for 100
    for p in parents:
        status = "diverged" if (p.target_sparsity, p.seed, p.method_config["frequency"]) == (0.9, 1, 100) else None
        row = {"source": "sweep", "status": status or "completed", "metric": "accuracy", "primary": True}
        row.update(mode="max", value=value[p.method_config["frequency"]][p.seed], sparsity=0.0, steps=780)
        results.write_rows(p, "trials", [row])
    chosen, orphans, unchosen = runner._runnable(children, trials, "best")
    by_id = {p.trial_id: p for p in parents}
    picked = sorted(
        (
            by_id[c.parent_trial_id].target_sparsity,
            by_id[c.parent_trial_id].method_config["frequency"],
            by_id[c.parent_trial_id].seed,
        )
        for c in chosen
    )
    # at 0.8 frequency 100 wins (0.825 > 0.81); at 0.9 its seed 1 diverged, leaving 0.8 < 0.81: frequency 50 wins
    assert picked == [(0.8, 100, 0), (0.8, 100, 1), (0.9, 50, 0), (0.9, 50, 1)]
    assert orphans == 1 and unchosen == 3
    everything, orphans, unchosen = runner._runnable(children, trials, "all")
    assert len(everything) == 7 and orphans == 1 and unchosen == 0


def test_equal_weights_are_stored_once_and_checked_when_read(trained, tmp_path):
    """The dense and the magnitude trial (same seed and model) and the lottery child start from the same
    weights: one file for the three; scratch children have their own. A damaged file is refused, not loaded."""
    folder, parent, children = trained
    sweep = parent.sweep_dir
    pointer = {}
    for trial_id in os.listdir(paths.artifacts_dir(sweep)):
        init = os.path.join(paths.artifacts_dir(sweep), trial_id, artifacts.INIT)
        if os.path.exists(init):
            pointer[trial_id] = yaml.safe_load(open(init))["sha256"]
    dense = next(t for t in pointer if t.startswith("dense-"))
    lottery = children["lottery", 0].trial_id
    assert pointer[parent.trial_id] == pointer[dense] == pointer[lottery]
    assert pointer[children["scratch_e", 0].trial_id] != pointer[parent.trial_id]
    blobs = os.listdir(os.path.join(paths.artifacts_dir(sweep), "weights"))
    step50 = yaml.safe_load(open(os.path.join(paths.artifacts_dir(sweep), parent.trial_id, "step-50.json")))["sha256"]
    assert step50 == pointer[children["lottery", 50].trial_id]  # the late-rewinding child starts from them
    assert sorted(blobs) == sorted(f"{h}.pt" for h in set(pointer.values()))

    damaged = copy_artifacts(tmp_path, sweep, parent.trial_id)
    blob = os.path.join(paths.artifacts_dir(damaged), "weights", f"{pointer[parent.trial_id]}.pt")
    data = bytearray(open(blob, "rb").read())
    data[-100] ^= 0xFF
    open(blob, "wb").write(bytes(data))
    with pytest.raises(ValueError, match="is corrupt"):
        artifacts.load_weights(damaged, parent.trial_id, 0)


def copy_artifacts(tmp_path, sweep: str, trial_id: str) -> str:
    """A copy of one trial's artifacts (and the weight files) in another sweep folder."""
    import shutil

    target = str(tmp_path / "copy")
    shutil.copytree(paths.artifacts_dir(sweep), paths.artifacts_dir(target))
    return target
