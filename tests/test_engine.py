"""The engine adapter: plain torch and DeepSpeed (one process, gloo on CPU) take the same steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sweep import spec
from tests.test_trainable import Crash, CrashingSession, table
from trainables.training import engine as engines
from trainables.training.loop import run_trial
from trainables.training.session import LocalSession
from trainables.trial import Trial


def _trial(sweep_dir, engine="torch", stage=0) -> Trial:
    return Trial(
        sweep="t",
        sweep_dir=str(sweep_dir),
        trial_id="x",
        config_hash="h",
        task="cubist_spiral",
        task_options={"width": 16, "epochs": 1, "eval_every": 130},
        method="magnitude",
        method_config={"begin_step": 50, "end_step": 300, "frequency": 50},
        target_sparsity=0.8,
        seed=0,
        engine=engine,
        zero_stage=stage,
    )


@pytest.mark.parametrize("stage", [0, 2])
def test_deepspeed_trial_equals_plain_torch(tmp_path, stage):
    plain = run_trial(_trial(tmp_path / "a"), LocalSession(str(tmp_path / "ca")))
    ds = run_trial(_trial(tmp_path / "b", "deepspeed", stage), LocalSession(str(tmp_path / "cb")))
    assert ds["value"] == plain["value"] and ds["sparsity"] == plain["sparsity"]
    a, b = table(tmp_path / "a", "evals"), table(tmp_path / "b", "evals")
    assert a["loss"].tolist() == b["loss"].tolist()


@pytest.mark.parametrize("stage", [0, 2])
def test_deepspeed_trial_resumes_after_a_crash(tmp_path, stage):
    """Checkpoint -> restore -> continue equals not stopping (ZeRO-2's optimizer state loads with weights_only)."""
    straight = run_trial(_trial(tmp_path / "a", "deepspeed", stage), LocalSession(str(tmp_path / "ca")))
    with pytest.raises(Crash):
        run_trial(_trial(tmp_path / "b", "deepspeed", stage), CrashingSession(str(tmp_path / "cb"), crash_after=1))
    resumed = run_trial(_trial(tmp_path / "b", "deepspeed", stage), LocalSession(str(tmp_path / "cb")))
    assert resumed["value"] == straight["value"]
    assert table(tmp_path / "a", "evals")["loss"].tolist() == table(tmp_path / "b", "evals")["loss"].tolist()


def _two_steps(engine, x, y, micro):
    for _ in range(2):
        for xs, ys in zip(x.chunk(micro), y.chunk(micro)):
            engine.backward(nn.functional.mse_loss(engine(xs), ys))
        engine.step()
    return torch.cat([p.detach().flatten() for p in engine.module.parameters()])


def _fresh():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def test_gradient_accumulation_equals_one_big_batch():
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    whole = _two_steps(engines.TorchEngine(*_fresh(), micro_batches=1), x, y, 1)
    accumulated = _two_steps(engines.TorchEngine(*_fresh(), micro_batches=4), x, y, 4)
    deepspeed = _two_steps(engines.DeepSpeedEngine(*_fresh(), micro_batches=4, micro_batch_size=2), x, y, 4)
    assert torch.allclose(whole, accumulated, atol=1e-6) and torch.allclose(whole, deepspeed, atol=1e-6)
    assert not torch.equal(whole, torch.cat([p.detach().flatten() for p in _fresh()[0].parameters()]))


def test_zero_stage_3_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="ZeRO stage 3 is not supported: sparsifiers need whole parameters"):
        engines.DeepSpeedEngine(*_fresh(), zero_stage=3)
    data = {
        "name": "x",
        "task": "cubist_spiral",
        "methods": {"dense": {}},
        "resources": {"engine": "deepspeed", "zero_stage": 3},
    }
    with pytest.raises(spec.SpecError, match=r"resources.zero_stage: 3 is not supported.*allowed: 0, 1, 2"):
        spec.parse(data, "s.yaml")
