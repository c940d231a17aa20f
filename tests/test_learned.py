"""Hand-computed checks of the learned sparsifiers: variational dropout (papers §1.3) and L0 (papers §1.4).

Expected numbers are literals worked out from the formulas with Python's `math` module (the expressions are given
next to them), never by calling the code under test. Statistical checks use a fixed torch seed and tolerances of
several standard errors.
"""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import methods
from methods.l0 import eval_gate, expected_l0, sample_gate
from methods.variational_dropout import log_alpha, negative_kl

VD = methods.get("variational_dropout")
L0 = methods.get("l0")


def vd(model, seed=0, **config):
    config.setdefault("weight", 1.0)
    sparsifier = VD(VD.Config(**config), seed=seed)
    sparsifier.prepare(model)
    return sparsifier


def l0(model, seed=0, **config):
    config.setdefault("weight", 1.0)
    sparsifier = L0(L0.Config(**config), seed=seed)
    sparsifier.prepare(model)
    return sparsifier


def set_(param, values):
    with torch.no_grad():
        param.copy_(torch.tensor(values, dtype=param.dtype))


def minus_kl(la):
    """KL per weight by hand: -(k1·sigmoid(k2 + k3·la) - 0.5·log(1 + exp(-la)) - k1), in plain floats."""
    k1, k2, k3 = 0.63576, 1.8732, 1.48695
    return -(k1 / (1 + math.exp(-(k2 + k3 * la))) - 0.5 * math.log(1 + math.exp(-la)) - k1)


# =====================================================================================================================
# Variational dropout
# =====================================================================================================================
# k1·sigmoid(k2 + k3·la) − 0.5·log(1 + exp(−la)) − k1 with k1, k2, k3 = 0.63576, 1.8732, 1.48695, by math:
NEGATIVE_KL = [
    (-8.0, -4.635899480334027),
    (-2.0, -1.540532741238367),
    (0.0, -0.4312389509903088),
    (3.0, -0.025420043312364804),
    (8.0, -0.0001683693469554104),
]


@pytest.mark.parametrize("la, expected", NEGATIVE_KL)
def test_negative_kl_values(la, expected):
    value = negative_kl(torch.tensor([la], dtype=torch.float64)).item()
    assert value == pytest.approx(expected, rel=1e-9, abs=1e-12)
    value32 = negative_kl(torch.tensor([la])).item()
    assert value32 == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_negative_kl_is_elementwise_and_monotone():
    las = torch.tensor([[-8.0, -2.0], [0.0, 3.0]], dtype=torch.float64)
    out = negative_kl(las)
    assert out.shape == (2, 2)
    assert out.flatten().tolist() == pytest.approx([e for _, e in NEGATIVE_KL[:4]], rel=1e-9)
    # -KL rises towards 0 as alpha grows: large log alpha costs nothing, small log alpha a lot
    assert torch.all(out.flatten()[1:] > out.flatten()[:-1])


def test_log_alpha_unclipped_and_clipped():
    theta = torch.tensor([0.5, -0.01, 0.0, 2.0, 3.0], dtype=torch.float64)
    log_sigma2 = torch.tensor([-1.0, -10.0, -3.0, 5.0, -10.0], dtype=torch.float64)
    expected = [
        -1.0 - math.log(0.25 + 1e-8),  # 0.38629434...
        -10.0 - math.log(1e-4 + 1e-8),  # -0.78934...
        -3.0 - math.log(1e-8),  # 15.4206... (theta = 0: the 1e-8 keeps it finite)
        5.0 - math.log(4.0 + 1e-8),  # 3.6137...
        -10.0 - math.log(9.0 + 1e-8),  # -12.197...
    ]
    assert log_alpha(theta, log_sigma2).tolist() == pytest.approx(expected, rel=1e-12)
    clipped = [expected[0], expected[1], 8.0, expected[3], -8.0]
    assert log_alpha(theta, log_sigma2, 8.0).tolist() == pytest.approx(clipped, rel=1e-12)
    assert log_alpha(theta, log_sigma2, 2.0).tolist() == pytest.approx(
        [expected[0], expected[1], 2.0, 2.0, -2.0], rel=1e-12
    )


# -- local reparameterisation ---------------------------------------------------------------------------------------
N_SAMPLES = 20000

LIN_THETA = [[0.5, -1.0, 0.25], [2.0, 0.1, -0.3]]
LIN_BIAS = [0.1, -0.2]
# log alpha = log sigma2 - log(theta^2 + 1e-8): 0.386, 0.5, 0.773 / -0.386, -15.4 (clipped to -8), 8.408 (clipped to 8)
LIN_LOG_SIGMA2 = [[-1.0, 0.5, -2.0], [1.0, -20.0, 6.0]]
LIN_X = [1.0, -2.0, 0.5]
# the variance uses sigma2 = exp(clipped log alpha) * (theta^2 + 1e-8)
LIN_SIGMA2 = [
    [math.exp(-1.0), math.exp(0.5), math.exp(-2.0)],
    [math.exp(1.0), math.exp(-8.0) * (0.01 + 1e-8), math.exp(8.0) * (0.09 + 1e-8)],
]
LIN_MEAN = [
    0.5 * 1.0 + (-1.0) * (-2.0) + 0.25 * 0.5 + 0.1,  # 2.725
    2.0 * 1.0 + 0.1 * (-2.0) + (-0.3) * 0.5 - 0.2,
]  # 1.45
LIN_VAR = [sum(x * x * s + 0.0 for x, s in zip(LIN_X, row)) + 1e-8 for row in LIN_SIGMA2]  # 6.997, 69.80


def assert_moments(samples, mean, var, sigmas=6.0):
    """Sample mean and variance over dim 0 match the expected ones within `sigmas` standard errors."""
    n = samples.shape[0]
    samples = samples.double()
    mean, var = torch.as_tensor(mean, dtype=torch.float64), torch.as_tensor(var, dtype=torch.float64)
    mean_err = (samples.mean(0) - mean).abs()
    assert torch.all(mean_err <= sigmas * torch.sqrt(var / n)), (samples.mean(0), mean)
    rel_var_err = (samples.var(0) / var - 1).abs()
    assert torch.all(rel_var_err <= sigmas * math.sqrt(2 / n)), (samples.var(0), var)


def test_vd_linear_local_reparameterisation():
    layer = nn.Linear(3, 2)
    sparsifier = vd(layer)
    set_(layer.weight, LIN_THETA)
    set_(layer.bias, LIN_BIAS)
    set_(layer.weight_log_sigma2, LIN_LOG_SIGMA2)
    assert sparsifier.log_sigma2["weight"] is layer.weight_log_sigma2
    layer.train()
    torch.manual_seed(0)
    out = layer(torch.tensor([LIN_X]).expand(N_SAMPLES, 3))
    assert out.shape == (N_SAMPLES, 2)
    assert_moments(out, LIN_MEAN, LIN_VAR)
    # the clip matters here: with the unclipped sigma2 = exp(6) the second variance would be 103.6, not 69.8
    assert abs(out[:, 1].double().var().item() - LIN_VAR[1]) < 0.1 * LIN_VAR[1]
    assert LIN_VAR[1] < 0.7 * (math.exp(1.0) + 0.25 * math.exp(6.0))


CONV_X = [[1.0, -1.0, 2.0], [0.5, 3.0, -2.0], [1.5, 0.0, -0.5]]
CONV_THETA = [[[1.0, -0.5], [0.25, 2.0]], [[-1.0, 0.3], [0.5, -0.2]]]
CONV_BIAS = [0.5, -1.0]
# log alpha: 0, 1.386 / 1.773, -5.227 | 0, 9.408 (clipped to 8) / -8.614 (clipped to -8), -2.781
CONV_LOG_SIGMA2 = [[[0.0, 0.0], [-1.0, -4.0]], [[0.0, 7.0], [-10.0, -6.0]]]
CONV_SIGMA2 = [
    [[1.0, math.exp(0.0)], [math.exp(-1.0), math.exp(-4.0)]],
    [[1.0, math.exp(8.0) * (0.09 + 1e-8)], [math.exp(-8.0) * (0.25 + 1e-8), math.exp(-6.0)]],
]


def conv_by_hand(x, kernel):
    """Valid 2x2 cross-correlation of a 3x3 input with each output channel's kernel, in plain floats."""
    return [
        [[sum(k[a][b] * x[i + a][j + b] for a in range(2) for b in range(2)) for j in range(2)] for i in range(2)]
        for k in kernel
    ]


def test_vd_conv_local_reparameterisation():
    conv = nn.Conv2d(1, 2, 2)
    vd(conv)
    set_(conv.weight, [[k] for k in CONV_THETA])
    set_(conv.bias, CONV_BIAS)
    set_(conv.weight_log_sigma2, [[k] for k in CONV_LOG_SIGMA2])
    mean = [[[v + b for v in row] for row in chan] for chan, b in zip(conv_by_hand(CONV_X, CONV_THETA), CONV_BIAS)]
    x2 = [[v * v for v in row] for row in CONV_X]
    var = [[[v + 1e-8 for v in row] for row in chan] for chan in conv_by_hand(x2, CONV_SIGMA2)]
    conv.train()
    torch.manual_seed(1)
    out = conv(torch.tensor([[CONV_X]]).expand(N_SAMPLES, 1, 3, 3))
    assert out.shape == (N_SAMPLES, 2, 2, 2)
    assert_moments(out, mean, var)


def test_vd_embedding_samples_rows():
    emb = nn.Embedding(3, 2)
    vd(emb)
    theta = [[0.1, -0.2], [1.0, -2.0], [0.5, 0.05]]
    # log alpha: row 1: 0 - 0 = 0, 1 - 1.386 = -0.386; row 2: 10 + 1.386 = 11.39 (clipped to 8), -3 + 5.99 = 2.99
    log_sigma2 = [[-10.0, -10.0], [0.0, 1.0], [10.0, -3.0]]
    set_(emb.weight, theta)
    set_(emb.weight_log_sigma2, log_sigma2)
    sigma2 = {1: [1.0, math.exp(1.0)], 2: [math.exp(8.0) * (0.25 + 1e-8), math.exp(-3.0)]}
    emb.train()
    torch.manual_seed(2)
    idx = torch.tensor([[1, 2, 1]]).expand(N_SAMPLES, 3)
    out = emb(idx)
    assert out.shape == (N_SAMPLES, 3, 2)
    mean = [theta[1], theta[2], theta[1]]
    var = [[s + 1e-8 for s in sigma2[i]] for i in (1, 2, 1)]
    assert_moments(out, mean, var)
    # every look-up draws its own noise, also two look-ups of the same row in one sequence
    assert not torch.equal(out[:, 0], out[:, 2])
    corr = torch.corrcoef(torch.stack([out[:, 0, 0], out[:, 2, 0]]))[0, 1].item()
    assert abs(corr) < 6 / math.sqrt(N_SAMPLES)


# -- evaluation: theta * [unclipped log alpha < t], one variant per threshold ---------------------------------------
EVAL_THETA = [[1.0, -1.0, 1.0], [-1.0, 1.0, 1.0]]  # theta^2 = 1: log alpha = log sigma2 (float32 log(1 + 1e-8) = 0)
EVAL_LOG_SIGMA2 = [[-9.0, 0.2, 0.7], [2.9, 3.1, 12.0]]  # 12 > clip: kept at t = 10 only if clipped (it must not be)
EVAL_MASKS = {
    0.5: [[True, True, False], [False, False, False]],
    3.0: [[True, True, True], [True, False, False]],
    10.0: [[True, True, True], [True, True, False]],
}
EVAL_SPARSITY = {0.5: 4 / 6, 3.0: 2 / 6, 10.0: 1 / 6}


def eval_layer():
    layer = nn.Linear(3, 2)
    sparsifier = vd(layer, thresholds=[0.5, 3.0, 10.0])
    set_(layer.weight, EVAL_THETA)
    set_(layer.bias, [0.1, -0.2])
    set_(layer.weight_log_sigma2, EVAL_LOG_SIGMA2)
    return layer, sparsifier


def test_vd_eval_variants_listed():
    _, sparsifier = eval_layer()
    assert sparsifier.eval_variants() == [{"threshold": 0.5}, {"threshold": 3.0}, {"threshold": 10.0}]
    assert VD.variant_columns == {"threshold": "float"}
    # before any use_variant the first threshold is in force
    assert sparsifier.masks()["weight"].tolist() == EVAL_MASKS[0.5]


@pytest.mark.parametrize("t", [0.5, 3.0, 10.0])
def test_vd_eval_forward_masks_and_sparsity_follow_threshold(t):
    layer, sparsifier = eval_layer()
    sparsifier.use_variant({"threshold": t})
    x = torch.tensor([[1.0, 2.0, 4.0], [0.5, -1.0, 3.0]])
    mask = torch.tensor(EVAL_MASKS[t])
    expected = x @ (torch.tensor(EVAL_THETA) * mask).T + torch.tensor([0.1, -0.2])
    layer.eval()
    assert torch.allclose(layer(x), expected, atol=1e-6)
    assert torch.equal(layer(x), layer(x))  # no noise in eval
    masks = sparsifier.masks()
    assert list(masks) == ["weight"] and masks["weight"].dtype == torch.bool
    assert masks["weight"].tolist() == EVAL_MASKS[t]
    assert sparsifier.sparsity() == pytest.approx(EVAL_SPARSITY[t], abs=1e-12)
    assert sparsifier.layer_sparsity() == pytest.approx({"weight": EVAL_SPARSITY[t]}, abs=1e-12)
    # eval does not modify the stored weights
    assert layer.weight.tolist() == EVAL_THETA


def test_vd_eval_embedding_and_conv_use_mask():
    model = nn.ModuleDict({"emb": nn.Embedding(2, 2), "conv": nn.Conv2d(1, 1, 1, bias=False)})
    sparsifier = vd(model, thresholds=[1.0])
    set_(model["emb"].weight, [[2.0, -3.0], [0.5, 1.5]])
    # log alpha = log sigma2 - log(theta^2): 0 - log 4 = -1.39 kept, 5 - log 9 = 2.80 pruned, 2 - log 0.25 = 3.39 pruned
    # -1 - log 2.25 = -1.81 kept
    set_(model["emb"].weight_log_sigma2, [[0.0, 5.0], [2.0, -1.0]])
    set_(model["conv"].weight, [[[[2.0]]]])
    set_(model["conv"].weight_log_sigma2, [[[[2.0]]]])  # log alpha = 2 - log 4 = 0.61 < 1: kept
    model.eval()
    assert model["emb"](torch.tensor([1, 0])).tolist() == [[0.0, 1.5], [2.0, 0.0]]
    assert model["conv"](torch.ones(1, 1, 2, 2)).tolist() == [[[[2.0, 2.0], [2.0, 2.0]]]]
    set_(model["conv"].weight_log_sigma2, [[[[3.0]]]])  # log alpha = 1.61 >= 1: pruned
    assert model["conv"](torch.ones(1, 1, 2, 2)).tolist() == [[[[0.0, 0.0], [0.0, 0.0]]]]
    assert sparsifier.masks()["emb.weight"].tolist() == [[True, False], [False, True]]
    assert sparsifier.sparsity() == pytest.approx(3 / 5, abs=1e-12)


# -- penalty and its ramps ------------------------------------------------------------------------------------------
# two VD tensors with theta = ±1, so log alpha = log sigma2; 9.5 and -8.5 are clipped to ±8 in the penalty
PEN_LOG_SIGMA2 = {"0.weight": [[-2.0, 0.0, 9.5], [3.0, -8.5, 1.0]], "1.weight": [[0.5, -1.5]]}
PEN_KL = sum(minus_kl(max(min(v, 8.0), -8.0)) for rows in PEN_LOG_SIGMA2.values() for row in rows for v in row)


def penalty_model(**config):
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    sparsifier = vd(model, **config)
    set_(model[0].weight, [[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]])
    set_(model[1].weight, [[-1.0, 1.0]])
    set_(model[0].weight_log_sigma2, PEN_LOG_SIGMA2["0.weight"])
    set_(model[1].weight_log_sigma2, PEN_LOG_SIGMA2["1.weight"])
    return model, sparsifier


def test_vd_penalty_sums_kl_over_all_tensors():
    # KL by hand at -2, 0, 8, 3, -8, 1, 0.5, -1.5: the clipped 9.5 -> 8 and -8.5 -> -8 enter as ±8
    assert PEN_KL == pytest.approx(8.3163136, abs=1e-6)  # 1.5405 + 0.4312 + 0.0002 + 0.0254 + 4.6359 + 0.1780 + ...
    # ... + 0.2803 + 1.2248
    _, sparsifier = penalty_model(weight=1.0)
    p = sparsifier.penalty(1)
    assert p.shape == () and p.item() == pytest.approx(PEN_KL, rel=1e-5)
    unclipped = sum(minus_kl(v) for rows in PEN_LOG_SIGMA2.values() for row in rows for v in row)
    assert abs(unclipped - PEN_KL) > 1e-2  # the clip is visible in the sum


@pytest.mark.parametrize("step, w", [(0, 0.0), (5, 0.0), (10, 0.0), (15, 0.125), (25, 0.375), (30, 0.5), (45, 0.5)])
def test_vd_penalty_linear_ramp(step, w):
    # w = 0.5 * min(max(0, step - 10) / 20, 1)
    _, sparsifier = penalty_model(weight=0.5, ramp="linear", ramp_start=10, ramp_length=20)
    assert sparsifier.penalty(step).item() == pytest.approx(w * PEN_KL, rel=1e-5, abs=1e-12)


def cubic_weights(weight, start, length, steps):
    """c_t = weight * min(1 - (1 - max(t - start, 0) / length)^3, 1); w_t = 0.1 c_t + 0.9 w_{t-1}; w_0 = 0."""
    w, out = 0.0, {}
    for t in range(1, steps + 1):
        c = weight * min(1 - (1 - max(t - start, 0) / length) ** 3, 1)
        w = 0.1 * c + 0.9 * w
        out[t] = w
    return out


CUBIC = dict(weight=2.0, ramp="cubic", ramp_start=3, ramp_length=4)
CUBIC_W = cubic_weights(2.0, 3, 4, 12)


def test_cubic_weights_by_hand():
    # steps 1..3: c = 0; step 4: c = 2 (1 - 0.75^3) = 1.15625 -> w = 0.115625; step 5: c = 1.75 -> w = 0.2790625
    assert [CUBIC_W[t] for t in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert CUBIC_W[4] == pytest.approx(0.115625, abs=1e-12)
    assert CUBIC_W[5] == pytest.approx(0.2790625, abs=1e-12)


def test_vd_penalty_cubic_ramp_every_step():
    _, sparsifier = penalty_model(**CUBIC)
    for t in range(1, 13):
        assert sparsifier.penalty(t).item() == pytest.approx(CUBIC_W[t] * PEN_KL, rel=1e-5, abs=1e-12), t


def test_vd_penalty_cubic_ramp_twice_per_step_and_skipped_steps():
    _, sparsifier = penalty_model(**CUBIC)
    for t in (4, 4, 4, 6, 6, 9, 12, 12):  # the average advances once per step, not once per call
        assert sparsifier.penalty(t).item() == pytest.approx(CUBIC_W[t] * PEN_KL, rel=1e-5), t


def test_vd_penalty_cubic_state_round_trip():
    _, sparsifier = penalty_model(**CUBIC)
    for t in range(1, 7):
        sparsifier.penalty(t)
    state = sparsifier.state_dict()
    _, fresh = penalty_model(**CUBIC)
    fresh.load_state_dict(state)
    assert fresh.penalty(6).item() == pytest.approx(CUBIC_W[6] * PEN_KL, rel=1e-5)
    for t in range(7, 13):
        assert fresh.penalty(t).item() == pytest.approx(CUBIC_W[t] * PEN_KL, rel=1e-5), t
    assert fresh.state_dict() == pytest.approx({"ema": CUBIC_W[12], "ema_step": 12}, rel=1e-12)
    # the loaded average is the one continued (a schedule replayed from w_0 = 0 would not give these)
    _, other = penalty_model(**CUBIC)
    other.load_state_dict({"ema": 1.0, "ema_step": 6})
    assert other.penalty(6).item() == pytest.approx(1.0 * PEN_KL, rel=1e-5)
    c7 = 2.0 * min(1 - (1 - 4 / 4) ** 3, 1)  # step 7: max(7 - 3, 0) / 4 = 1 -> c = 2
    assert other.penalty(7).item() == pytest.approx((0.1 * c7 + 0.9 * 1.0) * PEN_KL, rel=1e-5)


def test_vd_after_step_does_not_zero_weights():
    layer, sparsifier = eval_layer()
    sparsifier.after_step(1)
    assert layer.weight.tolist() == EVAL_THETA


# =====================================================================================================================
# L0
# =====================================================================================================================
# clip(sigmoid(la) * 1.2 - 0.1, 0, 1), by math; sigmoid(-2.4) * 1.2 - 0.1 = -0.000193 clips to 0
EVAL_GATES = [
    (-5.0, 0.0),
    (-2.4, 0.0),
    (-2.39, 0.00072611827706974),
    (0.0, 0.5),
    (2.197, 0.9799757434688033),
    (5.0, 1.0),
]
# sigmoid(la - (2/3) log(0.1 / 1.1)), by math
EXPECTED_L0 = [
    (-5.0, 0.032251641519187815),
    (-2.4, 0.30972545120391004),
    (0.0, 0.8318221839916905),
    (2.197, 0.9780242920395975),
    (5.0, 0.9986395750974075),
]


@pytest.mark.parametrize("la, gate", EVAL_GATES)
def test_l0_eval_gate_values(la, gate):
    assert eval_gate(torch.tensor([la], dtype=torch.float64)).item() == pytest.approx(gate, rel=1e-9, abs=1e-12)
    assert eval_gate(torch.tensor([la])).item() == pytest.approx(gate, rel=1e-3, abs=1e-6)


def test_l0_eval_forward_and_masks():
    layer = nn.Linear(6, 2)
    sparsifier = l0(layer)
    theta = [[1.0, -2.0, 3.0, 0.5, -1.0, 4.0], [2.0, 2.0, -2.0, 2.0, 2.0, 2.0]]
    set_(layer.weight, theta)
    set_(layer.bias, [0.25, -0.5])
    set_(layer.weight_log_alpha, [[la for la, _ in EVAL_GATES], [5.0, -5.0, 0.0, -2.4, -2.39, 2.197]])
    gates = [[g for _, g in EVAL_GATES], [1.0, 0.0, 0.5, 0.0, 0.00072611827706974, 0.9799757434688033]]
    expected_w = torch.tensor(theta, dtype=torch.float64) * torch.tensor(gates, dtype=torch.float64)
    layer.eval()
    out = layer(torch.eye(6)).double()  # row i = column i of theta * gate, plus the bias
    assert torch.allclose(out - torch.tensor([0.25, -0.5], dtype=torch.float64), expected_w.T, atol=1e-5)
    masks = sparsifier.masks()
    assert list(masks) == ["weight"] and masks["weight"].dtype == torch.bool
    assert masks["weight"].tolist() == [[False, False, True, True, True, True], [True, False, True, False, True, True]]
    assert sparsifier.sparsity() == pytest.approx(4 / 12, abs=1e-12)
    assert layer.weight.tolist() == theta  # the forward gates, it does not write the weights
    sparsifier.after_step(1)
    assert layer.weight.tolist() == theta


@pytest.mark.parametrize("la, expected", EXPECTED_L0)
def test_l0_expected_l0_values(la, expected):
    assert expected_l0(torch.tensor([la], dtype=torch.float64)).item() == pytest.approx(expected, rel=1e-9)


def test_l0_penalty_sum_and_linear_ramp():
    model = nn.Sequential(nn.Linear(3, 1), nn.Linear(2, 1))
    sparsifier = l0(model, weight=0.5, ramp_start=2, ramp_length=4)
    set_(model[0].weight_log_alpha, [[la for la, _ in EXPECTED_L0[:3]]])
    set_(model[1].weight_log_alpha, [[la for la, _ in EXPECTED_L0[3:]]])
    total = sum(e for _, e in EXPECTED_L0)  # 3.1504631
    assert total == pytest.approx(3.1504631, abs=1e-6)
    # w = 0.5 * min(max(0, step - 2) / 4, 1)
    for step, w in [(1, 0.0), (2, 0.0), (3, 0.125), (4, 0.25), (6, 0.5), (100, 0.5)]:
        assert sparsifier.penalty(step).item() == pytest.approx(w * total, rel=1e-5, abs=1e-12), step


def test_l0_penalty_cubic_ramp():
    model = nn.Linear(5, 1)
    sparsifier = l0(model, **CUBIC)
    set_(model.weight_log_alpha, [[la for la, _ in EXPECTED_L0]])
    total = sum(e for _, e in EXPECTED_L0)
    for t in (1, 2, 4, 4, 5, 8, 12):
        assert sparsifier.penalty(t).item() == pytest.approx(CUBIC_W[t] * total, rel=1e-5), t


def test_l0_log_alpha_init():
    model = nn.Sequential(nn.Linear(250, 200), nn.Linear(200, 2))
    sparsifier = l0(model, seed=3)
    la = model[0].weight_log_alpha.detach().double()
    assert la.shape == (200, 250)
    # N(2.197, 0.01): standard error of the mean 0.01 / sqrt(50000) = 4.5e-5, of the std about 3.2e-5
    assert la.mean().item() == pytest.approx(2.197, abs=3e-4)
    assert la.std().item() == pytest.approx(0.01, abs=3e-4)
    assert sparsifier.log_alpha["0.weight"] is model[0].weight_log_alpha
    # the seed decides the draw
    again = nn.Sequential(nn.Linear(250, 200), nn.Linear(200, 2))
    l0(again, seed=3)
    assert torch.equal(again[1].weight_log_alpha, model[1].weight_log_alpha)
    other = nn.Sequential(nn.Linear(250, 200), nn.Linear(200, 2))
    l0(other, seed=4)
    assert not torch.equal(other[1].weight_log_alpha, model[1].weight_log_alpha)
    # and the configured mean is used
    shifted = nn.Linear(250, 200)
    l0(shifted, init_log_alpha=0.847)
    assert shifted.weight_log_alpha.mean().item() == pytest.approx(0.847, abs=3e-4)


def test_l0_training_gate_is_one_sample_shared_by_the_batch():
    layer = nn.Linear(4, 3)
    l0(layer)
    theta = [[1.0, -2.0, 0.5, 3.0], [-1.0, 1.5, 2.0, -0.5], [0.25, 1.0, -4.0, 2.0]]
    set_(layer.weight, theta)
    set_(layer.bias, [0.1, 0.2, -0.3])
    set_(layer.weight_log_alpha, [[0.0] * 4] * 3)
    layer.train()
    # identity rows read off the effective weight; the scaled and summed rows must use the same gates
    x = torch.cat([torch.eye(4), 2 * torch.eye(4), torch.tensor([[1.0, -1.0, 0.5, 2.0]])])
    torch.manual_seed(4)
    gates = []
    for _ in range(3):  # three training steps
        out = layer(x)
        w_eff = (out[:4] - layer.bias).T.detach()
        assert torch.allclose(out, x @ w_eff.T + layer.bias, atol=1e-5)
        z = w_eff / torch.tensor(theta)
        assert torch.all(z >= -1e-6) and torch.all(z <= 1 + 1e-6)
        gates.append(z)
    assert not torch.allclose(gates[0], gates[1]) and not torch.allclose(gates[1], gates[2])


def test_l0_training_gate_distribution():
    # log alpha = 0: P(z = 0) = P(z = 1) = sigmoid((2/3) log(1/11)) = 0.16818, and P(z > 0) = expected_l0(0)
    layer = nn.Linear(100, 100, bias=False)
    l0(layer)
    set_(layer.weight, torch.ones(100, 100).tolist())
    set_(layer.weight_log_alpha, torch.zeros(100, 100).tolist())
    layer.train()
    torch.manual_seed(5)
    z = layer(torch.eye(100)).detach()  # = gates transposed
    p_edge = 1 / (1 + math.exp(-(2 / 3) * math.log(1 / 11)))
    assert p_edge == pytest.approx(1 - EXPECTED_L0[2][1], abs=1e-12)
    tol = 6 * math.sqrt(p_edge * (1 - p_edge) / z.numel())
    assert (z == 0).float().mean().item() == pytest.approx(p_edge, abs=tol)
    assert (z == 1).float().mean().item() == pytest.approx(p_edge, abs=tol)
    assert z.min().item() == 0.0 and z.max().item() == 1.0
    assert z.mean().item() == pytest.approx(0.5, abs=0.01)


def test_l0_sample_gate_bounds_and_freshness():
    la = torch.tensor([-6.0, -1.0, 0.0, 1.0, 6.0]).repeat(2000, 1)
    torch.manual_seed(6)
    a, b = sample_gate(la), sample_gate(la)
    assert a.min().item() >= 0.0 and a.max().item() <= 1.0
    assert not torch.equal(a, b)
    # a very negative log alpha almost always gives exactly 0, a very positive one exactly 1
    assert (a[:, 0] == 0).float().mean().item() > 0.95 and (a[:, 4] == 1).float().mean().item() > 0.95


# =====================================================================================================================
# Both: the new parameters belong to the model and are trained
# =====================================================================================================================
LEARNED_PARAM = {"variational_dropout": "weight_log_sigma2", "l0": "weight_log_alpha"}


@pytest.mark.parametrize("name", sorted(LEARNED_PARAM))
def test_new_parameters_registered_and_trained(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(5, 4), nn.Flatten(), nn.Linear(8, 3))
    cls = methods.get(name)
    sparsifier = cls(cls.Config(weight=0.1), seed=0)
    sparsifier.prepare(model)
    attr = LEARNED_PARAM[name]
    extra = {"0.weight", "2.weight"}
    params = dict(model.named_parameters())
    assert {n for n in params if n.endswith(attr)} == {f"0.{attr}", f"2.{attr}"}
    assert {n for n in model.state_dict() if n.endswith(attr)} == {f"0.{attr}", f"2.{attr}"}
    own = sparsifier.log_sigma2 if name == "variational_dropout" else sparsifier.log_alpha
    assert {n: id(p) for n, p in own.items()} == {n: id(params[n.replace("weight", attr)]) for n in extra}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # built after prepare, as a training loop does
    before = {n: p.detach().clone() for n, p in params.items()}
    torch.manual_seed(1)
    x, y = torch.randint(0, 5, (16, 2)), torch.randn(16, 3)
    loss = F.mse_loss(model(x), y) + sparsifier.penalty(1)
    loss.backward()
    for n in extra:
        grad = params[n.replace("weight", attr)].grad
        assert grad is not None and grad.abs().sum().item() > 0, n
    optimizer.step()
    for n in extra:
        new = n.replace("weight", attr)
        assert not torch.equal(params[new], before[new]), new
    # the penalty alone reaches the new parameters
    optimizer.zero_grad()
    sparsifier.penalty(2).backward()
    assert all(params[n.replace("weight", attr)].grad.abs().sum().item() > 0 for n in extra)
