"""The ResNet-50 task: the study's recipe, real JPEG folders, synthetic mode, and that it learns."""

from __future__ import annotations

import os

import pyarrow.dataset as ds
import pytest
import torch

from tests.test_imagenet_data import _write_tree
from trainables.records import paths
from trainables.tasks.resnet.task import ResNet50ImageNet, ResNetOptions
from trainables.training.loop import run_trial
from trainables.training.session import LocalSession
from trainables.trial import Trial

TINY = {"width": 4, "image_size": 32, "resize_size": 36, "loader_workers": 0, "eval_batch_size": 8}


def _task(**options) -> ResNet50ImageNet:
    return ResNet50ImageNet(ResNetOptions(**options), seed=0, device=torch.device("cpu"))


def test_recipe_learning_rate_follows_the_study():
    task = _task(data_dir="synthetic")  # 1,281,167 images, batch 1024: 1251 steps per epoch, base rate 0.4
    assert task.steps_per_epoch == 1251
    assert task.learning_rate(1) == pytest.approx(0.4 / (5 * 1251))
    assert task.learning_rate(5 * 1251) == pytest.approx(0.4)
    assert task.learning_rate(30 * 1251) == pytest.approx(0.4)  # still epoch 29.99
    assert task.learning_rate(30 * 1251 + 1) == pytest.approx(0.04)
    assert task.learning_rate(60 * 1251 + 1) == pytest.approx(0.004)
    assert task.learning_rate(128_000) == pytest.approx(0.0004)


def test_weight_decay_on_kernels_only():
    task = _task(data_dir="synthetic", synthetic_images=64, batch_size=8, **TINY)
    model = task.build_model()
    decayed, free = task.build_optimizer(model).param_groups
    assert decayed["weight_decay"] == 1e-4 and free["weight_decay"] == 0.0
    assert all(p.ndim == 4 or p.ndim == 2 for p in decayed["params"]) and len(decayed["params"]) == 54
    assert all(p.ndim == 1 for p in free["params"]) and decayed["nesterov"]


def _trial(tmp_path, method="magnitude", **options) -> Trial:
    config = {"begin_step": 2, "end_step": 6, "frequency": 2} if method != "dense" else {}
    return Trial(
        sweep="t",
        sweep_dir=str(tmp_path),
        trial_id="x",
        config_hash="h",
        task="resnet50_imagenet",
        task_options={**TINY, **options},
        method=method,
        method_config=config,
        target_sparsity=0.8 if method != "dense" else 0.0,
        seed=0,
    )


def test_trains_on_a_jpeg_folder(tmp_path):
    root = _write_tree(tmp_path / "imagenet")  # 3 classes, 6 train + 2 val images each
    row = run_trial(
        _trial(tmp_path / "s", data_dir=str(root), batch_size=6, micro_batch_size=3, train_steps=6, eval_every=3),
        LocalSession(str(tmp_path / "ck")),
    )
    assert row["status"] == "completed" and 0 <= row["value"] <= 1 and abs(row["sparsity"] - 0.8) < 0.01
    evals = ds.dataset(paths.table_dir(str(tmp_path / "s"), "evals")).to_table().to_pandas()
    assert list(evals["step"]) == [3, 6] and evals["metric"].eq("top1").all()


def test_learns_a_memorisable_synthetic_set():
    # 32 images, each with a fixed label: the net must fit them (accumulating 2 micro-batches per step)
    task = _task(
        data_dir="synthetic",
        synthetic_images=32,
        synthetic_classes=4,
        batch_size=16,
        micro_batch_size=8,
        lr_per_256=4.0,
        warmup_epochs=0,
        label_smoothing=0.0,
        **TINY,
    )
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = task.build_optimizer(model)
    losses = []
    for step in range(1, 61):
        x, y = task.batch(step)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_debug_runs_the_tiny_resnet_spec_in_one_process(tmp_path):
    from tests.conftest import sparsity_cli

    spec = os.path.join(os.path.dirname(__file__), "..", "sweep", "specs", "resnet50_tiny_cpu.yaml")
    result = sparsity_cli("debug", spec, "--log-every", "8", "--storage", str(tmp_path), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "one process instead of resources.workers 2" in result.stdout
    assert [line.split()[1] for line in result.stdout.splitlines() if line.startswith("step")] == ["8", "16"]
    assert "completed at step 16: top1" in result.stdout
