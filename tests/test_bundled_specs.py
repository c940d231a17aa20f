"""Every bundled spec validates and plans; the study's grids have the study's sizes."""

from __future__ import annotations

import glob
import os

import pytest

from sweep import plan, spec
from sweep.cli import demo_spec

SPECS = sorted(glob.glob(os.path.join(os.path.dirname(demo_spec()), "*.yaml")))
SIZES = {
    "resnet50_magnitude.yaml": 324,
    "resnet50_random.yaml": 324,
    "resnet50_variational_dropout.yaml": 180,
    "resnet50_extended.yaml": 4,
    "demo.yaml": 22,
    "cubist_packed_1024.yaml": 1024,
    "resnet50_tiny_cpu.yaml": 2,
    "transformer_magnitude.yaml": 504,
    "transformer_random.yaml": 504,
    "transformer_variational_dropout.yaml": 432,
    "transformer_l0.yaml": 864,
    "transformer_tiny_cpu.yaml": 8,
    "sparsest_overparam.yaml": 18_954,  # papers/sparsest-models.md §5.5
    "sparsest_fixed_init_95.yaml": 9_720,  # §5.6
    "sparsest_fixed_init_995.yaml": 11_340,
    "sparsest_nine_cpu.yaml": 216,
    # the searches plan phase 1 until it has run (phase 2's sizes: tests/test_search.py)
    "sparsest_search_fixed_95.yaml": 558,  # §3.2
    "sparsest_search_fixed_995.yaml": 2_034,
    "sparsest_search_random_95.yaml": 24_576,
    "sparsest_search_random_995.yaml": 24_576,
    "sparsest_slice_fixed_95.yaml": 9_720 + 558,  # §6, with phase 2's 2,496: 12,774
    "lottery_cubist.yaml": 15 + 15 * 5,
    "lottery_bars_cnn.yaml": 6 + 6 * 4,
    "resnet50_lottery.yaml": 324 + 324 * 5,  # children of the best configurations only run (parents: best)
    "transformer_lottery.yaml": 504 + 504 * 5,
}


@pytest.mark.parametrize("path", SPECS, ids=os.path.basename)
def test_bundled_spec_plans(path):
    trials = plan.expand(spec.load(path), "/tmp/unused", path)
    assert trials and len({t.trial_id for t in trials}) == len(trials)
    if os.path.basename(path) in SIZES:
        assert len(trials) == SIZES[os.path.basename(path)]
    with open(path) as f:
        assert "sparsity run" in f.read(), "the header comment gives the command that runs it"


def test_vd_grid_ramps_are_the_studys_begin_end_pairs():
    trials = plan.expand(
        spec.load(os.path.join(os.path.dirname(demo_spec()), "resnet50_variational_dropout.yaml")), "/tmp/unused"
    )
    pairs = {
        (t.method_config["ramp_start"], t.method_config["ramp_start"] + t.method_config["ramp_length"]) for t in trials
    }
    assert pairs == {(b, e) for b in (8000, 20000, 40000) for e in (68000, 76000, 100000)}
    assert {t.method_config["init_log_sigma2"] for t in trials} == {-15.0}


@pytest.mark.parametrize("name", ["transformer_magnitude.yaml", "transformer_random.yaml"])
def test_transformer_pruning_grid_is_the_studys(name):
    trials = plan.expand(spec.load(os.path.join(os.path.dirname(demo_spec()), name)), "/tmp/unused")
    pairs = {(t.method_config["begin_step"], t.method_config["end_step"]) for t in trials}
    ends = {0: (3, 4, 5), 1: (3, 4, 5), 2: (3, 4, 5), 3: (4, 5), 4: (5,)}
    assert pairs == {(b * 100_000, e * 100_000) for b, es in ends.items() for e in es}
    assert {t.method_config["frequency"] for t in trials} == {1000, 10000}
    assert {t.task_options["regularization"] for t in trials} == {"dropout+label_smoothing", "label_smoothing", "none"}
    assert {t.target_sparsity for t in trials} == {0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98}


def test_transformer_vd_evaluates_the_studys_eleven_thresholds():
    trials = plan.expand(
        spec.load(os.path.join(os.path.dirname(demo_spec()), "transformer_variational_dropout.yaml")), "/tmp/unused"
    )
    assert {tuple(t.method_config["thresholds"]) for t in trials} == {tuple(0.5 * i for i in range(11))}
    assert all(t.method_config["ramp_start"] + t.method_config["ramp_length"] <= 500_001 for t in trials)
    assert {t.method_config["weight"] for t in trials} == {2.222e-8, 8.889e-8, 1.556e-7, 2.222e-7}


@pytest.mark.parametrize("name", ["resnet50_lottery.yaml", "transformer_lottery.yaml"])
def test_lottery_specs_mirror_the_studys(name):
    parsed = spec.load(os.path.join(os.path.dirname(demo_spec()), name))
    stage = parsed.stages["reinit"]
    assert stage.parents == "best" and stage.time_multiplier == 2.0
    assert set(stage.variants) == {
        "scratch_e",
        "scratch_b",
        "sparsity_aware_init",
        "scratch_b_sparsity_aware_init",
        "lottery",
    }
    trials = plan.expand(parsed, "/tmp/unused")
    longer = [t for t in trials if t.init.get("variant") == "scratch_b"]
    main = {t.trial_id: t for t in trials if t.stage == "main"}
    assert all(t.task_options["train_steps"] == 2 * main[t.parent_trial_id].task_options["train_steps"] for t in longer)
