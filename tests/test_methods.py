"""Unit tests for the sparsifiers in `methods`: schedule, registry, masks under real optimizers, accounting, resume."""

import copy

import pytest
import torch
from torch import nn

import methods
from methods.schedules import PolynomialSchedule, polynomial_sparsity

PRUNERS = ["magnitude", "random"]


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))


def mixed(seed=0):
    """Prunable tensors of different sizes and kinds, plus a norm layer that must never be pruned."""
    torch.manual_seed(seed)
    return nn.ModuleDict(
        {
            "lin": nn.Linear(7, 3),  # 21 weights
            "conv": nn.Conv2d(2, 3, 3),  # 54 weights
            "emb": nn.Embedding(13, 5),  # 65 weights
            "big": nn.Linear(50, 20),  # 1000 weights
            "norm": nn.LayerNorm(5),
        }
    )


def make(name, target=0.8, seed=0, begin=0, end=10, frequency=2):
    cls = methods.get(name)
    return cls(cls.Config(begin_step=begin, end_step=end, frequency=frequency), target=target, seed=seed)


def prune(sparsifier, model, steps):
    sparsifier.prepare(model)
    for step in range(1, steps + 1):
        sparsifier.after_step(step)


# -- schedule ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("step, expected", [(0, 0.0), (100, 0.0), (150, 0.4625), (200, 0.7), (300, 0.8), (400, 0.8)])
def test_polynomial_sparsity_cubic(step, expected):
    assert polynomial_sparsity(step, 0.8, 100, 300) == pytest.approx(expected, abs=1e-12)


def test_polynomial_sparsity_initial_and_exponent():
    assert polynomial_sparsity(200, 0.8, 100, 300, initial=0.2) == pytest.approx(0.725, abs=1e-12)
    assert polynomial_sparsity(50, 0.8, 100, 300, initial=0.2) == pytest.approx(0.2, abs=1e-12)
    assert polynomial_sparsity(200, 0.8, 100, 300, exponent=1.0) == pytest.approx(0.4, abs=1e-12)


@pytest.mark.parametrize("end", [100, 99])
def test_polynomial_sparsity_rejects_empty_interval(end):
    with pytest.raises(ValueError):
        polynomial_sparsity(100, 0.8, 100, end)


def test_is_update_step():
    sched = PolynomialSchedule(begin_step=100, end_step=300, frequency=30)
    updates = [s for s in range(0, 400) if sched.is_update_step(s)]
    assert updates == [100, 130, 160, 190, 220, 250, 280, 300]


# -- registry ---------------------------------------------------------------------------------------------------------
def test_registry_names():
    assert {"dense", "magnitude", "random"} <= set(methods.names())
    assert methods.get("magnitude").name == "magnitude"


def test_registry_unknown_lists_names():
    with pytest.raises(KeyError) as info:
        methods.get("nope")
    message = info.value.args[0]
    assert "nope" in message and all(n in message for n in ("dense", "magnitude", "random"))


# -- config and constructor validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(begin_step=10, end_step=5),
        dict(begin_step=10, end_step=10),
        dict(begin_step=0, end_step=10, frequency=0),
        dict(begin_step=-1, end_step=10),
    ],
)
def test_config_rejects(kwargs):
    with pytest.raises(ValueError):
        methods.get("magnitude").Config(**kwargs)


def test_check_steps():
    config = methods.get("magnitude").Config(begin_step=10, end_step=100)
    config.check_steps(100)
    with pytest.raises(ValueError):
        config.check_steps(99)


@pytest.mark.parametrize("target", [-0.1, 1.0, 1.5])
def test_target_out_of_range(target):
    with pytest.raises(ValueError):
        make("magnitude", target=target)


def test_target_in_range_accepted():
    assert make("magnitude", target=0.0).target == 0.0
    assert make("random", target=0.99).target == 0.99


# -- masks through real training --------------------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4),
    "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True),
    "adam": lambda p: torch.optim.Adam(p, lr=0.05),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.01),
}


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("name", PRUNERS)
def test_masks_hold_through_training(name, opt):
    model = mlp()
    sparsifier = make(name, target=0.8)
    sparsifier.prepare(model)
    optimizer = OPTIMIZERS[opt](model.parameters())
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 2, generator=gen)
    y = torch.sin(3 * x[:, :1]) * x[:, 1:]
    previous = sparsifier.masks()
    for step in range(1, 51):
        loss = nn.functional.mse_loss(model(x), y) + sparsifier.penalty(step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sparsifier.after_step(step)
        masks = sparsifier.masks()
        params = dict(model.named_parameters())
        for n, m in masks.items():
            assert torch.all(params[n][~m] == 0.0), f"step {step}: pruned weight of {n} is not zero"
            assert not (m & ~previous[n]).any(), f"step {step}: a pruned weight of {n} came back"
        masked = copy.deepcopy(model)
        with torch.no_grad():
            for n, p in masked.named_parameters():
                if n in masks:
                    p.mul_(masks[n])
            assert torch.equal(model(x), masked(x))
        previous = masks
    assert sparsifier.sparsity() == pytest.approx(0.8, abs=1 / 256)


# -- accounting -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PRUNERS)
@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.95, 0.98])
def test_achieved_sparsity(name, target):
    model = mixed()
    sparsifier = make(name, target=target)
    prune(sparsifier, model, 12)
    masks = sparsifier.masks()
    assert sorted(masks) == ["big.weight", "conv.weight", "emb.weight", "lin.weight"]
    sizes = {"big.weight": 1000, "conv.weight": 54, "emb.weight": 65, "lin.weight": 21}
    pruned = {n: int((~m).sum()) for n, m in masks.items()}
    for n, numel in sizes.items():
        assert masks[n].numel() == numel
        assert abs(pruned[n] - target * numel) <= 1, (n, pruned[n])
    layer = sparsifier.layer_sparsity()
    assert layer.keys() == sizes.keys()
    for n, numel in sizes.items():
        assert layer[n] == pytest.approx(pruned[n] / numel, abs=1e-12)
    assert sparsifier.sparsity() == pytest.approx(sum(pruned.values()) / 1140, abs=1e-12)


@pytest.mark.parametrize("name", PRUNERS)
def test_biases_and_norms_untouched(name):
    model = mixed()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if not n.endswith("weight") or "norm" in n}
    prune(make(name, target=0.9), model, 12)
    after = dict(model.named_parameters())
    assert sorted(before) == ["big.bias", "conv.bias", "lin.bias", "norm.bias", "norm.weight"]
    for n, value in before.items():
        assert torch.equal(after[n], value), n


def test_prunable_parameters():
    assert list(methods.prunable_parameters(nn.Linear(2, 3))) == ["weight"]
    assert list(methods.prunable_parameters(mlp())) == ["0.weight", "2.weight", "4.weight"]
    with pytest.raises(ValueError):
        methods.prunable_parameters(nn.Sequential(nn.ReLU(), nn.LayerNorm(3)))


def test_dense_never_prunes():
    model = mlp()
    before = copy.deepcopy(model.state_dict())
    sparsifier = methods.get("dense")(methods.get("dense").Config())
    prune(sparsifier, model, 5)
    assert sparsifier.penalty(1).item() == 0.0
    assert sparsifier.sparsity() == 0.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# -- magnitude --------------------------------------------------------------------------------------------------------
def tiny_linear():
    layer = nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.1, 2.0, -0.7], [-0.05, 1.0, -3.0, 0.3]]))
    return layer


def test_magnitude_prunes_smallest():
    layer = tiny_linear()
    sparsifier = make("magnitude", target=0.75, end=2, frequency=1)
    sparsifier.prepare(layer)
    sparsifier.after_step(1)  # s = 0.75 * (1 - 0.5**3) = 0.65625 -> round(5.25) = 5 pruned
    assert sparsifier.masks()["weight"].tolist() == [[False, False, True, False], [False, True, True, False]]
    sparsifier.after_step(2)  # s = 0.75 -> 6 pruned: the 1.0 goes next
    expected = [[False, False, True, False], [False, False, True, False]]
    assert sparsifier.masks()["weight"].tolist() == expected
    assert layer.weight.tolist() == [[0.0, 0.0, 2.0, 0.0], [0.0, 0.0, -3.0, 0.0]]


def test_magnitude_pruned_weight_never_returns():
    layer = tiny_linear()
    sparsifier = make("magnitude", target=0.75, end=2, frequency=1)
    sparsifier.prepare(layer)
    sparsifier.after_step(1)
    with torch.no_grad():
        layer.weight[0, 0] = 100.0  # an optimizer could move a pruned weight anywhere before the next update
    sparsifier.after_step(2)
    mask = sparsifier.masks()["weight"]
    assert not mask[0, 0] and layer.weight[0, 0].item() == 0.0
    # the 1.0 is pruned next instead of the 100 regrowing
    assert mask.tolist() == [[False, False, True, False], [False, False, True, False]]


def test_magnitude_ties_broken_by_position():
    layer = nn.Linear(4, 1, bias=False)
    nn.init.constant_(layer.weight, 1.0)
    sparsifier = make("magnitude", target=0.5, end=1, frequency=1)
    prune(sparsifier, layer, 1)
    assert sparsifier.masks()["weight"].tolist() == [[False, False, True, True]]


# -- random -----------------------------------------------------------------------------------------------------------
def random_masks(model_seed, seed, steps=12):
    sparsifier = make("random", target=0.9, seed=seed)
    prune(sparsifier, mixed(model_seed), steps)
    return sparsifier.masks()


def test_random_same_seed_same_masks():
    a, b = random_masks(model_seed=0, seed=7), random_masks(model_seed=1, seed=7)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_random_different_seeds_differ():
    a, b = random_masks(0, seed=7), random_masks(0, seed=8)
    assert all(not torch.equal(a[n], b[n]) for n in a)


@pytest.mark.parametrize("name", PRUNERS)
def test_masks_nested_across_schedule(name):
    sparsifier = make(name, target=0.95)
    sparsifier.prepare(mixed())
    previous, counts = sparsifier.masks(), []
    for step in range(1, 11):
        sparsifier.after_step(step)
        masks = sparsifier.masks()
        assert all(not (masks[n] & ~previous[n]).any() for n in masks)
        counts.append(int(sum((~m).sum() for m in masks.values())))
        previous = masks
    assert counts[0] == 0 and counts[1] > 0 and counts == sorted(counts) and len(set(counts)) == 6


# -- resume -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PRUNERS)
def test_state_dict_round_trip(name):
    sparsifier = make(name, target=0.8, seed=3)
    prune(sparsifier, mlp(0), 12)
    state = sparsifier.state_dict()
    model = mlp(1)
    fresh = make(name, target=0.8, seed=3)
    fresh.prepare(model)
    fresh.load_state_dict(state)
    masks, params = fresh.masks(), dict(model.named_parameters())
    assert masks.keys() == sparsifier.masks().keys()
    for n, m in sparsifier.masks().items():
        assert torch.equal(masks[n], m) and masks[n].dtype == torch.bool
        assert torch.all(params[n][~m] == 0.0) and torch.all(params[n][m] != 0.0)
    assert fresh.sparsity() == sparsifier.sparsity()


def test_state_dict_is_a_copy():
    sparsifier = make("magnitude", target=0.8)
    prune(sparsifier, mlp(), 12)
    state = sparsifier.state_dict()
    state["masks"]["0.weight"].fill_(True)
    assert not sparsifier.masks()["0.weight"].all()


def test_load_state_dict_mismatch():
    sparsifier = make("magnitude", target=0.8)
    prune(sparsifier, mlp(), 12)
    state = sparsifier.state_dict()
    state["masks"]["renamed.weight"] = state["masks"].pop("2.weight")
    fresh = make("magnitude", target=0.8)
    fresh.prepare(mlp())
    with pytest.raises(ValueError):
        fresh.load_state_dict(state)
    other = make("magnitude", target=0.8)
    other.prepare(nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1)))
    with pytest.raises(ValueError):
        other.load_state_dict(sparsifier.state_dict())


def test_tied_weight_is_one_prunable_tensor():
    """A weight shared by two modules (tied embedding/softmax) gets one mask and counts once."""
    emb, out = nn.Embedding(10, 4), nn.Linear(4, 10, bias=False)
    out.weight = emb.weight
    model = nn.Sequential(emb, out)
    assert list(methods.prunable_parameters(model)) == ["0.weight"]
    cls = methods.get("random")
    sparsifier = cls(cls.Config(begin_step=0, end_step=2, frequency=1), target=0.5, seed=0)
    sparsifier.prepare(model)
    for step in (1, 2):
        sparsifier.after_step(step)
    assert sparsifier.sparsity() == 0.5 and (emb.weight == 0).sum().item() == 20
