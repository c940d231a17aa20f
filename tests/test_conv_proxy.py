"""The conv path of the learned methods on a real (small) CNN task, trained in-process: they sparsify conv
kernels while staying well above chance."""

from __future__ import annotations

import pyarrow.dataset as ds
import pytest

import methods
from trainables.records import paths
from trainables.tasks.bars import bars
from trainables.training.loop import run_trial
from trainables.training.session import LocalSession
from trainables.trial import Trial


def test_bars_data_is_deterministic_and_balanced():
    x, y = bars(512, seed=3)
    x2, y2 = bars(512, seed=3)
    assert x.shape == (512, 1, 12, 12) and (x == x2).all() and (y == y2).all()
    assert set(y.tolist()) == {0, 1, 2, 3} and min((y == k).sum().item() for k in range(4)) > 90


@pytest.mark.parametrize(
    "method, config, epochs",
    [
        ("variational_dropout", {"weight": 2.4e-4, "ramp_length": 200, "thresholds": [0.5]}, 8),
        ("l0", {"weight": 1e-2, "ramp_length": 600}, 30),  # log α must travel from 2.2 to below -2.4 at Adam's pace
    ],
)
def test_learned_methods_sparsify_conv_kernels(tmp_path, method, config, epochs):
    trial = Trial(
        sweep="t",
        sweep_dir=str(tmp_path),
        trial_id="t",
        config_hash="h",
        task="bars_cnn",
        task_options={"epochs": epochs, "eval_every": 64 * epochs},
        method=method,
        method_config=config,
        target_sparsity=None,
        seed=0,
        hp_columns=tuple(methods.get(method).variant_columns.items()),
    )
    row = run_trial(trial, LocalSession(str(tmp_path / "ck")))
    layers = ds.dataset(paths.table_dir(str(tmp_path), "layers")).to_table().to_pandas()
    conv = layers[layers["shape"].str.count("x") == 3]  # 4-d kernels
    assert len(conv) == 3
    assert 1 - conv["nonzero"].sum() / conv["numel"].sum() > 0.4, conv  # (L0 keeps the 72-weight first conv denser)
    assert row["value"] > 0.4  # chance is 0.25
