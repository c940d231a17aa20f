"""The Sparsest-Models study's nine algorithms, MLP conventions, NNZ targets, connectivity and grids
(papers/sparsest-models.md §2, §4, §5.4-5.6; issue 14).

Scores are checked on literal tiny networks against values computed here by independent means (finite
differences, a closed form, torch's Hessian of a forward written in this file); the NNZ each algorithm lands on
from the study's BENCH-95 initialisation against §4's list; the packed and unpacked loops against each other.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import methods
from sweep import plan, spec
from trainables.packing import loop as pack_loop
from trainables.packing.model import stack_sequential
from trainables.packing.pack import Pack, pack_id
from trainables.records import artifacts, results
from trainables.tasks.cubist import MLP, CubistOptions, CubistSpiral
from trainables.training import engine as engines
from trainables.training import loop as unpacked_loop
from trainables.training import structure
from trainables.training.session import LocalSession

NINE = ["imp_rewind", "gmp", "rigl", "prospr", "iterative_snip", "force", "grasp", "snip", "synflow"]


# -- literal tiny networks -------------------------------------------------------------------------------------
def tiny(dtype=torch.float64) -> nn.Sequential:
    """2 -> 3 -> 1 with literal weights (every score distinct)."""
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).to(dtype)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.9, -0.4], [-0.7, 0.5], [0.3, 0.8]]))
        model[0].bias.copy_(torch.tensor([0.1, 0.2, -0.05]))
        model[2].weight.copy_(torch.tensor([[0.6, -0.9, 0.35]]))
        model[2].bias.copy_(torch.tensor([0.05]))
    return model


X = torch.tensor([[1.0, 0.5], [-0.3, 1.2], [0.8, -1.1], [-1.0, -0.2], [0.4, 0.9], [-0.6, 0.3]], dtype=torch.float64)
Y = torch.tensor([[1.0], [0.0], [1.0], [0.0], [0.0], [1.0]], dtype=torch.float64)


def bce(model, batch):
    x, y = batch
    return F.binary_cross_entropy_with_logits(model(x), y)


def context(batches=None, lr=0.1):
    batches = batches or {}
    return methods.InitContext(
        batch=lambda i: batches.get(i, (X, Y)), loss=bce, lr=[lr], momentum=[0.9], weight_decay=[0.0], stored_init=True
    )


def sparsifier(name, model, keep, **config):
    cls = methods.get(name)
    total = sum(p.numel() for p in methods.prunable_parameters(model).values())
    s = cls(cls.Config(**config), target=1 - keep / total, seed=0)
    s.prepare(model)
    return s


def flat_weights(model):
    return torch.cat([model[0].weight.flatten(), model[2].weight.flatten()])


def forward(w, b1, b2, x):
    """The tiny network's forward from a flat weight vector (6 + 3 entries), written out."""
    w1, w2 = w[:6].view(3, 2), w[6:].view(1, 3)
    return torch.relu(x @ w1.t() + b1) @ w2.t() + b2


def mask_of(s):
    return torch.cat([m.flatten() for m in s.masks().values()])


def fd_gradient(f, w, eps=1e-6):
    return torch.stack([(f(w + eps * e) - f(w - eps * e)) / (2 * eps) for e in torch.eye(len(w), dtype=w.dtype)])


def top_at_least(scores, k):
    return scores >= torch.sort(scores, descending=True).values[k - 1]


def strictly_above_kth(scores, k):
    return scores > torch.sort(scores, descending=True).values[k - 1]


def test_snip_scores_are_connection_sensitivity():
    model = tiny()
    b1, b2 = model[0].bias.detach(), model[2].bias.detach()
    w = flat_weights(model).detach()
    grad = fd_gradient(lambda v: F.binary_cross_entropy_with_logits(forward(v, b1, b2, X), Y), w)
    expected = top_at_least((grad * w).abs(), 4)
    s = sparsifier("snip", model, keep=4)
    s.prune_at_init(model, context())
    assert torch.equal(mask_of(s), expected)
    assert int(mask_of(s).sum()) == 4


@pytest.mark.parametrize("name", ["iterative_snip", "force"])
def test_one_iteration_of_iterative_snip_and_force_is_snip_with_a_strict_threshold(name):
    model = tiny()
    b1, b2 = model[0].bias.detach(), model[2].bias.detach()
    w = flat_weights(model).detach()
    grad = fd_gradient(lambda v: F.binary_cross_entropy_with_logits(forward(v, b1, b2, X), Y), w)
    s = sparsifier(name, model, keep=5, iterations=1)
    s.prune_at_init(model, context())
    assert torch.equal(mask_of(s), strictly_above_kth((grad * w).abs(), 5))
    assert int(mask_of(s).sum()) == 4  # F - 1
    assert torch.equal(flat_weights(model).detach(), w)  # the weights are left as they were


def test_iterative_snip_keeps_pruned_weights_pruned_and_force_may_revive_them():
    for name in ("iterative_snip", "force"):
        model = tiny()
        s = sparsifier(name, model, keep=3, iterations=4)
        s.prune_at_init(model, context())
        assert int(mask_of(s).sum()) <= 3
    # iterative SNIP's masks only shrink: with one batch per step it ends inside its first step's mask
    model = tiny()
    first = sparsifier("iterative_snip", model, keep=3, iterations=1)
    first.keep = [int(9 * (3 / 9) ** 0.25)]  # the first of 4 steps' count
    first.prune_at_init(model, context())
    model = tiny()
    four = sparsifier("iterative_snip", model, keep=3, iterations=4)
    four.prune_at_init(model, context())
    assert not bool((mask_of(four) & ~mask_of(first)).any())


def test_synflow_scores_match_the_closed_form_of_the_absolute_network():
    """With every parameter made positive and an all-ones input, R = |W2| (|W1| 1 + |b1|) + |b2|, so
    dR/dW1[j, i] = |W2[j]| and dR/dW2[j] = (|W1| 1 + |b1|)[j]; one iteration keeps the scores strictly above
    the (N - F)-th smallest (F - 1)."""
    model = tiny(torch.float32)
    w1, b1, w2 = model[0].weight.detach().abs(), model[0].bias.detach().abs(), model[2].weight.detach().abs()
    scores = torch.cat([(w1 * w2.t()).flatten(), (w2 * (w1.sum(1) + b1)).flatten()])
    before = [p.detach().clone() for p in model.parameters()]
    s = sparsifier("synflow", model, keep=5, iterations=1)
    s.prune_at_init(model, context())
    assert torch.equal(mask_of(s), scores > torch.sort(scores).values[9 - 5])
    assert int(mask_of(s).sum()) == 4
    for p, b in zip(model.parameters(), before):  # signs restored
        assert torch.equal(p.detach(), b)


def test_grasp_scores_are_minus_theta_hessian_gradient():
    """g and Hg over the two class halves (2 points each, the first of each class in the batch), logits / T;
    the int(N (1 - F/N)) highest of -θ Hg are removed (strictly below the threshold stays)."""
    model = tiny()
    b1, b2 = model[0].bias.detach(), model[2].bias.detach()
    w = flat_weights(model).detach()
    halves = [(X[Y[:, 0] == c][:2], Y[Y[:, 0] == c][:2]) for c in (0, 1)]
    temperature = 200.0

    def loss(v):
        return sum(F.binary_cross_entropy_with_logits(forward(v, b1, b2, x) / temperature, y) for x, y in halves)

    g = torch.autograd.functional.jacobian(loss, w)
    hg = torch.autograd.functional.hessian(loss, w) @ g
    scores = -w * hg
    expected = scores < torch.sort(scores, descending=True).values[int(9 * (1 - 4 / 9)) - 1]
    s = sparsifier("grasp", model, keep=4, samples_per_class=2, reinit="none")
    s.prune_at_init(model, context())
    assert torch.equal(mask_of(s), expected)
    assert int(mask_of(s).sum()) == 4


def test_prospr_scores_are_the_meta_gradient_through_an_sgd_step():
    """One inner step: θ1 = θ0 - lr ∇θ L(θ0 ⊙ c); score = |d L(θ1 ⊙ c) / dc| at c = 1 on the next batch, here by
    finite differences of c; keep exactly the top ceil((1 - (1 - F/N)) N)."""
    model = tiny()
    b1, b2 = model[0].bias.detach(), model[2].bias.detach()
    w0 = flat_weights(model).detach()
    second = (X.flip(0), Y.flip(0))
    lr = 0.1

    def meta(c):
        w = w0.clone().requires_grad_(True)
        inner = F.binary_cross_entropy_with_logits(forward(w * c, b1, b2, X), Y)
        (gw,) = torch.autograd.grad(inner, w)
        # the biases take their own step too
        bb1, bb2 = b1.clone().requires_grad_(True), b2.clone().requires_grad_(True)
        g1, g2 = torch.autograd.grad(F.binary_cross_entropy_with_logits(forward(w0 * c, bb1, bb2, X), Y), [bb1, bb2])
        w1 = w0 - lr * gw
        return F.binary_cross_entropy_with_logits(forward(w1 * c, b1 - lr * g1, b2 - lr * g2, second[0]), second[1])

    scores = fd_gradient(meta, torch.ones(9, dtype=torch.float64)).abs()
    k = math.ceil((1 - (1 - 4 / 9)) * 9)
    expected = torch.zeros(9, dtype=torch.bool)
    expected[torch.argsort(scores, descending=True)[:k]] = True
    s = sparsifier("prospr", model, keep=4, inner_steps=1)
    s.prune_at_init(model, context({2: second}, lr=lr))
    assert torch.equal(mask_of(s), expected)


def test_rigl_drops_the_smallest_and_grows_the_largest_gradients_and_skips_that_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    s = sparsifier("rigl", model, keep=12, delta_t=10, alpha=0.5, end_step=100)
    s.apply_masks()
    before = {n: m.clone() for n, m in s.masks().items()}
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    assert s.before_update(9) is True  # not an update step: pruned weights' gradients are zeroed
    for name, p in s.params.items():
        assert torch.all(p.grad[~before[name]] == 0)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    grads = {n: p.grad.clone() for n, p in s.params.items()}
    assert s.before_update(10) is False  # an update: the optimizer step is skipped
    fraction = 0.5 / 2 * (1 + math.cos(10 * math.pi / 100))
    for name, p in s.params.items():
        old, new = before[name].flatten(), s.masks()[name].flatten()
        n = int(old.sum())
        drop = int(n * fraction)
        weight = p.detach().abs().flatten()
        kept = torch.zeros_like(old)
        kept[torch.argsort(weight, descending=True, stable=True)[: n - drop]] = True
        grow_scores = grads[name].abs().flatten().masked_fill(kept, float("-inf"))
        grown = torch.zeros_like(old)
        grown[torch.argsort(grow_scores, descending=True, stable=True)[:drop]] = True
        assert torch.equal(new, kept | grown), name
        assert int(new.sum()) == n  # each layer keeps its count


# -- the study's conventions -------------------------------------------------------------------------------------
def test_a_neuron_losing_its_last_outgoing_weight_loses_its_bias_and_the_output_bias_never_goes():
    for stacked in (False, True):
        torch.manual_seed(1)
        models = [MLP(2, widths=(3, 3, 3), bias_follows_out_degree=True) for _ in range(2)]
        model = stack_sequential(models) if stacked else models[0]
        cls = methods.get("dense")
        s = cls.for_members([(cls.Config(), 0.0, 0)] * 2) if stacked else cls(cls.Config())
        s.prepare(model)
        masks = {n: m.clone() for n, m in s.masks().items()}
        column = (slice(None), slice(None), 1) if stacked else (slice(None), 1)
        masks["2.weight"][column] = False  # neuron 1 of the first hidden layer: no outgoing weight left
        masks["6.weight"][...] = False  # the whole classifier: the last hidden layer loses every outgoing weight
        s.set_masks(masks)
        first, last = model[0].bias.detach(), model[4].bias.detach()
        assert torch.all(first[..., 1] == 0) and torch.all(first[..., [0, 2]] != 0)
        assert torch.all(last == 0)
        assert torch.all(model[6].bias.detach() != 0)  # the output bias is never masked


def test_bench_init_takes_the_top_left_block_and_counts_are_the_studys():
    import json

    from trainables.tasks.cubist import STORED

    with open(STORED / "bench95_init.json") as f:
        raw = json.load(f)["tensors"]
    task = CubistSpiral(CubistOptions(d1=3, d2=2, d3=2, init="bench95"), 0, torch.device("cpu"))
    model = task.build_model()
    assert torch.equal(model[2].weight.detach(), torch.tensor(raw["second_layer.weight"])[:2, :3])
    assert torch.equal(model[6].bias.detach(), torch.tensor(raw["clf.bias"]))
    measured = structure.measure(model)[0]
    assert (measured["nnz_weights"], measured["nnz_model"]) == (18, 26)  # §3.3: (3, 2, 2) is 18 / 26
    for width, w, b in [(3, 27, 10), (16, 560, 49), (256, 131840, 769)]:
        counted = structure.measure(MLP(2, width))[0]
        assert (counted["nnz_weights"], counted["nnz_model"] - counted["nnz_weights"]) == (w, b)  # §2.1's table


# -- connectivity on hand-made masks ------------------------------------------------------------------------------
def chain_with(weights):
    model = MLP(2, widths=(2, 2, 2))
    with torch.no_grad():
        for layer, w in zip([m for m in model if isinstance(m, nn.Linear)], weights):
            layer.weight.copy_(torch.tensor(w, dtype=torch.float32))
            layer.bias.fill_(0.5)
    return structure.measure(model)[0]


FULL = [[[1, 1], [1, 1]], [[1, 1], [1, 1]], [[1, 1], [1, 1]], [[1, 1]]]


def test_a_fully_connected_net_has_every_weight_effective():
    m = chain_with(FULL)
    assert m["paths"] == 16 and m["effective_weights"] == 14 and m["ineffective_weights"] == 0
    assert m["in_degree_zero"] == m["out_degree_zero"] == 0 and m["nnz_model"] == 14 + 7


def test_an_in_degree_zero_neuron_feeds_forward_through_its_bias_but_on_no_path():
    w = [[[0, 0], [1, 1]], *FULL[1:]]  # neuron 0 of layer 1: no input, a live bias, two outgoing weights
    m = chain_with(w)
    assert m["in_degree_zero"] == 1 and m["out_degree_zero"] == 0
    assert m["ineffective_weights"] == 2 and m["effective_weights"] == 10 and m["paths"] == 8
    assert m["layers"][1]["ineffective_weights"] == 2 and m["layers"][0]["in_degree_zero"] == 1
    assert m["nnz_model"] == 12 + 7  # its bias still counts in Model NNZ


def test_an_out_degree_zero_neuron_makes_its_inputs_ineffective():
    w = [FULL[0], [[1, 0], [1, 0]], *FULL[2:]]  # neuron 1 of layer 1 feeds nothing
    m = chain_with(w)
    assert m["out_degree_zero"] == 1 and m["in_degree_zero"] == 0
    assert m["ineffective_weights"] == 2 and m["layers"][0]["ineffective_weights"] == 2 and m["paths"] == 8


def test_a_cut_layer_leaves_no_path_and_no_effective_weight():
    w = [FULL[0], [[0, 0], [0, 0]], *FULL[2:]]
    m = chain_with(w)
    assert m["paths"] == 0 and m["effective_weights"] == 0 and m["ineffective_weights"] == 4 + 4 + 2
    assert m["out_degree_zero"] == 2 and m["in_degree_zero"] == 2


def test_models_that_are_not_chains_are_not_measured():
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    assert structure.measure(conv) is None and structure.measure(nn.Linear(2, 2)) is None


# -- the NNZ each algorithm lands on from BENCH-95 (§4) -----------------------------------------------------------
def trials_for(tmp_path, method, width, nnz, epochs=1, config=None, seeds=(0,), name="nnz"):
    data = {
        "name": name,
        "task": "cubist_spiral",
        "task_options": {
            "width": width,
            "init": "bench95",
            "bias_mask": "out_degree",
            "epochs": epochs,
            "eval_every": 390,
        },
        "methods": {method: config or {}},
        "nnz": list(nnz),
        "seeds": list(seeds),
    }
    return plan.expand(spec.parse(data, "test.yaml"), str(tmp_path / name))


def kept_at_init(tmp_path, method, width, nnz, **config):
    trials = trials_for(tmp_path, method, width, nnz, config=config)
    _, _, s, _ = pack_loop.build(Pack(pack_id(trials), tuple(trials)), torch.device("cpu"))
    return [
        int(s.member_rows(torch.cat([s.member_rows(m) for m in s.masks().values()], 1))[k].sum())
        for k in range(len(trials))
    ]


FS = (15, 20, 26)


@pytest.mark.parametrize("width", [3, 16])
def test_synflow_lands_on_f_minus_1(tmp_path, width):
    assert kept_at_init(tmp_path, "synflow", width, FS) == [f - 1 for f in FS]


@pytest.mark.parametrize("width", [3, 16])
def test_prospr_lands_on_its_ceil(tmp_path, width):
    n = {3: 27, 16: 560}[width]
    assert kept_at_init(tmp_path, "prospr", width, FS) == [math.ceil((1 - (1 - f / n)) * n) for f in FS]


def test_snip_grasp_land_on_f_and_iterative_ones_on_f_minus_1_at_width_16(tmp_path):
    assert kept_at_init(tmp_path, "snip", 16, FS) == list(FS)
    assert kept_at_init(tmp_path, "grasp", 16, FS) == list(FS)
    assert kept_at_init(tmp_path, "iterative_snip", 16, FS) == [f - 1 for f in FS]
    assert kept_at_init(tmp_path, "force", 16, FS) == [f - 1 for f in FS]


def test_at_width_3_ties_at_zero_saliency_move_the_data_driven_ones_by_a_few(tmp_path):
    """At width 3 whole neurons are dead on a batch, so many scores are exactly 0 and tie at the threshold; the
    study's thresholds (ours) then keep a few more (>=) or fewer (>, <) than F."""
    for name, low, high in [("snip", 0, 1), ("grasp", -2, 0), ("iterative_snip", -3, -1), ("force", -3, -1)]:
        for f, kept in zip(FS, kept_at_init(tmp_path, name, 3, FS)):
            assert f + low <= kept <= f + high, (name, f, kept)


def final_rows(tmp_path, method, width, config, epochs=1):
    trials = trials_for(tmp_path, method, width, FS, epochs=epochs, config=config, name=f"{method}{width}")
    pack = Pack(pack_id(trials), tuple(trials))
    pack_loop.run_pack(pack, LocalSession(str(tmp_path / f"s-{method}{width}")))
    rows = results.read_unit(pack.sweep_dir, pack.pack_id, "trials")
    layers = results.read_unit(pack.sweep_dir, pack.pack_id, "layers")
    kept = {t: sum(r["nonzero"] for r in layers if r["trial_id"] == t) for t in {r["trial_id"] for r in rows}}
    return sorted((r["target_nnz"], kept[r["trial_id"]], r["nnz_weights"]) for r in rows)


@pytest.mark.parametrize("width", [3, 16])
def test_gmp_ends_on_f_minus_2_when_its_last_events_pass_t(tmp_path, width):
    """The study's schedule ends two events past T (19,303 and 19,400, 19,497); here the same shape in one epoch:
    events every step, T = 388."""
    rows = final_rows(tmp_path, "gmp", width, {"frequency": 1, "end_step": 388})
    assert [kept for _, kept, _ in rows] == [f - 2 for f in FS]


@pytest.mark.parametrize("width", [3, 16])
def test_imp_rewind_ends_on_f_minus_1(tmp_path, width):
    rows = final_rows(tmp_path, "imp_rewind", width, {})
    assert [kept for _, kept, _ in rows] == [f - 1 for f in FS]


def erk_kept(widths, keep):
    """RigL's per-layer counts, written out: ERK densities eps (in + out) / (in out), dense where above 1, and
    numel - int(numel (1 - density)) per layer."""
    shapes = list(zip((*widths, 1), (2, *widths)))  # (out, in)
    dense, total = set(), sum(o * i for o, i in shapes)
    while True:
        budget = keep - sum(shapes[j][0] * shapes[j][1] for j in dense)
        eps = budget / sum(o + i for j, (o, i) in enumerate(shapes) if j not in dense)
        over = {j for j, (o, i) in enumerate(shapes) if j not in dense and eps * (o + i) / (o * i) > 1}
        if not over:
            break
        dense |= over
    assert total
    return sum(
        o * i if j in dense else o * i - int(o * i * (1 - eps * (o + i) / (o * i))) for j, (o, i) in enumerate(shapes)
    )


@pytest.mark.parametrize("width", [3, 16])
def test_rigl_keeps_its_per_layer_rounding(tmp_path, width):
    rows = final_rows(tmp_path, "rigl", width, {"delta_t": 50, "end_step": 300})
    assert [kept for _, kept, _ in rows] == [erk_kept((width,) * 3, f) for f in FS]
    assert erk_kept((16, 16, 16), 20) == 22  # §4: 4 + 7 + 7 + 4
    assert all(nnz <= kept for _, kept, nnz in rows)  # a grown weight on a dead neuron may stay exactly 0


# -- the contract, packed and unpacked ------------------------------------------------------------------------------
SHORT = {
    "imp_rewind": {"rounds": 2},
    "gmp": {"frequency": 10, "end_step": 370},
    "rigl": {"delta_t": 50, "end_step": 300},
    "grasp": {"samples_per_class": 10},
}


@pytest.mark.parametrize("method", NINE)
def test_packed_members_get_what_each_gets_alone(tmp_path, method):
    trials = trials_for(tmp_path, method, 3, (15, 20), config=SHORT.get(method), seeds=(0, 1))
    for t in trials:
        unpacked_loop.run_trial(t, LocalSession(str(tmp_path / "u" / t.trial_id)))
    alone = {t.trial_id: (results.read_rows(t, "trials"), results.read_rows(t, "layers")) for t in trials}
    packed_trials = trials_for(tmp_path, method, 3, (15, 20), config=SHORT.get(method), seeds=(0, 1), name="packed")
    pack = Pack(pack_id(packed_trials), tuple(packed_trials))
    pack_loop.run_pack(pack, LocalSession(str(tmp_path / "p")))
    rows = results.read_unit(pack.sweep_dir, pack.pack_id, "trials")
    layers = results.read_unit(pack.sweep_dir, pack.pack_id, "layers")
    counted = [*structure.TRIAL_COLUMNS, "target_nnz", "sparsity", "steps", "status"]
    for row in rows:
        one, one_layers = alone[row["trial_id"]]
        assert {c: row[c] for c in counted} == {c: one[0][c] for c in counted}, (method, row["trial_id"])
        assert row["value"] == pytest.approx(one[0]["value"], abs=1e-3)
        mine = [r for r in layers if r["trial_id"] == row["trial_id"]]
        keys = ["layer", "nonzero", *structure.LAYER_COLUMNS]
        assert [{k: r[k] for k in keys} for r in mine] == [{k: r[k] for k in keys} for r in one_layers]


def test_imp_rounds_rewind_to_the_initial_weights_under_the_new_mask_with_a_fresh_optimizer(tmp_path, monkeypatch):
    trial = trials_for(tmp_path, "imp_rewind", 3, (15,), config={"rounds": 5})[0]
    resets = []
    original = engines.TorchEngine.reset_optimizer

    def reset(self):
        original(self)
        resets.append(len(self.optimizer.state))

    monkeypatch.setattr(engines.TorchEngine, "reset_optimizer", reset)
    seen, rates = {}, {}

    def on_step(step, loss, lr, s):
        rates[step] = lr
        if step % 390 == 0:
            seen[step] = ({n: p.detach().clone() for n, p in s.params.items()}, s.masks())

    unpacked_loop.run_trial(trial, LocalSession(str(tmp_path / "s")), on_step=on_step)
    initial = artifacts.load_weights(trial.sweep_dir, trial.trial_id, 0)
    assert resets == [0, 0, 0, 0]  # after rounds 1-4, no optimizer state left
    kept = []
    for step in (390, 780, 1170, 1560):
        weights, masks = seen[step]
        for name, value in weights.items():
            assert torch.equal(value, initial[name] * masks[name]), (step, name)
        kept.append(sum(int(m.sum()) for m in masks.values()))
        assert rates[step + 1] == rates[1]  # the schedule starts anew
    n = 27
    assert kept == [int(n * (15 / n) ** (k / 4)) - 1 for k in range(1, 5)]


# -- bad input, before anything runs ----------------------------------------------------------------------------------
BASE = {"name": "bad", "task": "cubist_spiral", "methods": {"snip": {}}, "nnz": [15]}


@pytest.mark.parametrize(
    "change, words",
    [
        ({"sparsity": [0.5]}, "nnz: give the targets as sparsity or as nnz, not both"),
        ({"task_options": {"width": 3}, "nnz": [27]}, "nnz: 27 is not below the model's 27 weights"),
        ({"task_options": {"init": "bench99"}}, "task_options.init"),
        ({"task_options": {"width": 0}}, "task_options.width"),
        ({"task_options": {"d1": -1}}, "task_options.d1"),
        ({"task_options": {"width": 32, "init": "bench95"}}, "hidden widths must be at most 16"),
        ({"nnz": [0]}, "nnz"),
    ],
)
def test_bad_nnz_init_and_width_are_one_line_errors(tmp_path, change, words):
    data = {**BASE, **change}
    with pytest.raises(spec.SpecError) as e:
        plan.expand(spec.parse(data, "bad.yaml"), str(tmp_path / "bad"))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_the_cli_refuses_an_nnz_beyond_the_model_in_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "\n".join(
            ["name: bad", "task: cubist_spiral", "task_options: {width: 3}", "methods: {snip: {}}", "nnz: [30]", ""]
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "sweep.cli", "plan", str(path), "--storage", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
    assert "30 is not below the model's 27 weights" in out.stderr
    assert not (tmp_path / "bad").exists()


# -- the study's grids ----------------------------------------------------------------------------------------------------
def bundled(name, tmp_path):
    from importlib import resources

    path = resources.files("sweep") / "specs" / f"{name}.yaml"
    return plan.expand(spec.load(str(path)), str(tmp_path / name))


def test_the_bundled_grids_have_the_studys_sizes(tmp_path):
    over = bundled("sparsest_overparam", tmp_path)
    assert len(over) == 18_954  # §5.5
    per_width = {}
    for t in over:
        per_width[t.task_options["width"]] = per_width.get(t.task_options["width"], 0) + 1
    assert per_width == {3: 972, 4: 1296, 5: 1782, **{w: 1863 for w in (6, 7, 8, 16, 32, 64, 128, 256)}}
    assert {t.method for t in over} == set(NINE)
    assert len(bundled("sparsest_fixed_init_95", tmp_path)) == 9_720  # §5.6
    assert len(bundled("sparsest_fixed_init_995", tmp_path)) == 11_340
    small = bundled("sparsest_nine_cpu", tmp_path)
    assert {t.method for t in small} == set(NINE) and {t.task_options["width"] for t in small} == {3, 16}
    assert all(t.task_options["init"] == "bench95" for t in small)


# -- the report's section -----------------------------------------------------------------------------------------------
def test_report_section_picks_the_best_run_per_target_and_the_sparsest_at_each_accuracy(tmp_path):
    import pandas as pd

    from analysis import document, sparsest

    rows = []
    for method, accuracy in [("snip", {15: 0.90, 20: 0.96, 26: 0.999}), ("synflow", {15: 0.80, 20: 0.85, 26: 0.94})]:
        for f, acc in accuracy.items():
            for lr, delta in ((0.1, 0.0), (0.2, -0.01)):  # the worse configuration is never chosen
                rows.append(
                    dict(
                        method=method,
                        target_nnz=f,
                        nnz_weights=f - 1,
                        nnz_model=f + 8,
                        value=acc + delta,
                        status="completed",
                        width=3,
                        init="bench95",
                        in_degree_zero=1,
                        out_degree_zero=0,
                        effective_weights=f - 3,
                        ineffective_weights=2,
                        paths=4 if f > 15 else 0,
                        lr=lr,
                    )
                )
    trials = pd.DataFrame(rows)
    best = sparsest.best_per_target(trials)
    assert len(best) == 6 and set(best["lr"]) == {0.1}
    at95 = sparsest.smallest(best, 0.95)
    assert at95.loc[("width 3, bench95", "snip"), "nnz_weights"] == 19
    assert ("width 3, bench95", "synflow") not in at95.index
    text = document.markdown(sparsest.section(trials, str(tmp_path)))
    assert "Fewest nonzero weights reaching 95.0% accuracy" in text and "Disconnected paths" in text
    assert "0.9600 (19)" in text and (tmp_path / "accuracy_vs_nnz.png").stat().st_size > 0
    assert "| width 3, bench95 | synflow | — |" in text  # never reached 95 %


def test_report_overparameterisation_view_gives_the_fewest_nnz_reaching_the_target_per_width(tmp_path):
    import pandas as pd

    from analysis import document, sparsest

    rows = []
    # snip needs more weights the wider the model; synflow reaches 95 % only at width 3
    for method, width, reach in [("snip", 3, 18), ("snip", 8, 22), ("snip", 16, 26), ("synflow", 3, 24)]:
        for f in (15, 18, 20, 22, 24, 26):
            rows.append(
                dict(method=method, target_nnz=f, nnz_weights=f, nnz_model=f + 8, value=0.96 if f >= reach else 0.9,
                     status="completed", width=width, init="bench95", paths=1, in_degree_zero=0, out_degree_zero=0,
                     effective_weights=f, ineffective_weights=0)
            )  # fmt: skip
    for f in (15, 26):  # synflow at width 8 never reaches it
        rows.append({**rows[0], "method": "synflow", "width": 8, "target_nnz": f, "nnz_weights": f, "value": 0.7})
    text = document.markdown(sparsest.section(pd.DataFrame(rows), str(tmp_path)))
    assert "## Overparameterisation" in text and (tmp_path / "overparameterisation.png").stat().st_size > 0
    assert "| 95.0% | bench95 | snip | 18 | 22 | 26 |" in text
    assert "| 95.0% | bench95 | synflow | 24 | — | — |" in text
    one_width = pd.DataFrame([r for r in rows if r["width"] == 3])
    assert "Overparameterisation" not in document.markdown(sparsest.section(one_width, str(tmp_path)))
