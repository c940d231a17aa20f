"""Allocation policies on literal shapes with hand-computed answers, and through magnitude pruning."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import methods
from methods import allocation

SHAPES = {"a": torch.Size([4, 2]), "b": torch.Size([10, 10]), "c": torch.Size([8, 4, 3, 3]), "d": torch.Size([1, 10])}


def test_erk_hand_computed_densities():
    # raw = sum(shape)/prod(shape): a 6/8, b 20/100, c 18/288, d 11/10 ; numel 8, 100, 288, 10
    # target 0.9 -> budget 0.1 * 406 = 40.6 weights. eps = 40.6 / (6 + 20 + 18 + 11) = 0.7382 -> d: 0.81, a: 0.554
    # no layer exceeds density 1: densities are eps * raw
    eps = 40.6 / 55
    expected = {"a": eps * 0.75, "b": eps * 0.2, "c": eps * 18 / 288, "d": eps * 1.1}
    got = allocation.erk_densities(0.9, SHAPES)
    assert got == pytest.approx(expected)


def test_erk_caps_dense_layers_and_redistributes_exactly():
    # target 0.5: budget 203. eps = 203/55 = 3.69 -> a (2.77) and d (4.06) exceed 1 -> dense (18 weights)
    # rest: 185 = eps2 * (20 + 18) -> eps2 = 4.868 -> b 0.974, c 0.304
    got = allocation.erk_densities(0.5, SHAPES)
    assert got["a"] == 1.0 and got["d"] == 1.0
    assert got["b"] == pytest.approx(185 / 38 * 0.2) and got["c"] == pytest.approx(185 / 38 * 18 / 288)
    for target in (0.5, 0.8, 0.9, 0.95, 0.99):
        d = allocation.erk_densities(target, SHAPES)
        kept = sum(d[n] * math.prod(s) for n, s in SHAPES.items())
        assert kept == pytest.approx((1 - target) * 406) and all(0 < v <= 1 for v in d.values())


def test_fixed_layers_and_allocate():
    names = list(SHAPES)
    fixed = allocation.fixed_layers(names, first_layer_dense=True, overrides={"d": 0.8, "*": 0.1})
    assert fixed == {"a": 0.0, "b": 0.1, "c": 0.1, "d": 0.8}
    fixed = allocation.fixed_layers(names, first_layer_dense=True, overrides={"d": 0.8})
    assert allocation.allocate("uniform", 0.9, SHAPES, fixed) == {"a": 0.0, "b": 0.9, "c": 0.9, "d": 0.8}
    assert allocation.allocate("global", 0.9, SHAPES, fixed) == {"a": 0.0, "b": None, "c": None, "d": 0.8}
    erk = allocation.allocate("erk", 0.9, SHAPES, fixed)
    assert erk["a"] == 0.0 and erk["d"] == 0.8
    assert (1 - erk["b"]) * 100 + (1 - erk["c"]) * 288 == pytest.approx(0.1 * 388)


def _prune(model, **config):
    cls = methods.get("magnitude")
    sparsifier = cls(cls.Config(begin_step=0, end_step=4, frequency=1, **config), target=0.9, seed=0)
    sparsifier.prepare(model)
    for step in range(1, 5):
        sparsifier.after_step(step)
    return sparsifier


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))


def test_global_magnitude_is_one_threshold_over_all_tensors():
    model = _mlp()
    weights = torch.cat([p.detach().abs().flatten() for p in methods.prunable_parameters(model).values()])
    sparsifier = _prune(model, allocation="global")
    kept = torch.cat([p.detach().abs().flatten() for p in methods.prunable_parameters(model).values()])
    total = weights.numel()
    assert (kept == 0).sum().item() == round(0.9 * total)
    assert abs(sparsifier.sparsity() - 0.9) <= 1 / total
    threshold = weights.sort().values[round(0.9 * total) - 1]
    assert (kept[kept > 0] > threshold).all()  # everything kept is above the one global threshold
    assert len(set(round(v, 3) for v in sparsifier.layer_sparsity().values())) > 1  # layers differ


def test_first_layer_dense_and_overrides_through_magnitude():
    s = _prune(_mlp(), first_layer_dense=True, layer_overrides={"4.weight": 0.5})
    assert s.layer_sparsity() == {"0.weight": 0.0, "2.weight": pytest.approx(0.9, abs=1 / 2048), "4.weight": 0.5}


def test_erk_through_magnitude_matches_global_target():
    s = _prune(_mlp(), allocation="erk")
    assert s.sparsity() == pytest.approx(0.9, abs=3 / 2176)  # one weight of rounding per tensor


def test_bad_override_is_refused():
    with pytest.raises(ValueError, match=r"layer_overrides\['fc'\] must be a sparsity in \[0, 1\)"):
        methods.get("magnitude").Config(begin_step=0, end_step=4, layer_overrides={"fc": 1.5})
