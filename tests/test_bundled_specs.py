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
    "resnet50_tiny_cpu.yaml": 2,
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
