"""The transformer_wmt14_ende task: real text files in the WMT layout, SentencePiece, token batches, beam search
and both BLEU scores, trained in-process through the shared loop (no Ray)."""

from __future__ import annotations

import dataclasses
import os

import pyarrow.dataset as ds
import pytest
import torch

from trainables.tasks.transformer import text
from trainables.tasks.transformer.task import TransformerOptions, TransformerWMT
from trainables.training.loop import run_trial
from trainables.training.session import LocalSession
from trainables.trial import Trial

TINY = dict(
    vocab_size=400,
    d_model=64,
    d_ff=128,
    heads=4,
    layers=2,
    batch_tokens=2048,
    warmup_steps=100,
    lr_constant=2.0,
    regularization="label_smoothing",
    eval_sentences=60,
    extra_length=10,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A small corpus written as WMT text files (train/newstest2013/newstest2014 .en/.de), read by the real loader."""
    return text.write_synthetic_corpus(str(tmp_path_factory.mktemp("wmt")), train=20_000, dev=60, test=60)


def test_a_few_hundred_steps_lift_bleu_clearly_above_an_untrained_model(corpus):
    task = TransformerWMT(TransformerOptions(data_dir=corpus, train_steps=300, **TINY), 0, torch.device("cpu"))
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = task.build_optimizer(model)
    untrained = task.evaluate(model)
    for step in range(1, 301):
        for group in optimizer.param_groups:
            group["lr"] = task.learning_rate(step)
        task.loss(model, task.batch(step)).backward()
        optimizer.step()
        optimizer.zero_grad()
    trained = task.evaluate(model)
    assert untrained["bleu_tokenized"] < 2 and untrained["sacrebleu"] < 2, untrained
    assert trained["bleu_tokenized"] > 15 and trained["sacrebleu"] > 10, (
        trained
    )  # measured: 0 untrained; 34.7 and 26.1 at 300 steps
    assert "tok:13a" in task.metric_details()["sacrebleu"]


def test_the_study_recipe_defaults():
    o = TransformerOptions(data_dir="x")
    assert (o.d_model, o.d_ff, o.heads, o.layers, o.dropout, o.label_smoothing) == (512, 2048, 8, 6, 0.1, 0.1)
    assert (o.adam_beta2, o.warmup_steps, o.train_steps, o.beam, o.length_penalty) == (0.997, 8000, 500_000, 4, 0.6)
    task = TransformerWMT.__new__(TransformerWMT)
    task.options = o
    assert task.learning_rate(8000) == pytest.approx(2 * 512**-0.5 * 8000**-0.5)  # peak 9.88e-4
    assert task.learning_rate(8000) == pytest.approx(9.88e-4, abs=1e-6)
    assert task.learning_rate(4000) == pytest.approx(task.learning_rate(8000) / 2)
    assert task.learning_rate(32000) == pytest.approx(task.learning_rate(8000) / 2)
    for flag, expected in [("dropout+label_smoothing", (0.1, 0.1)), ("label_smoothing", (0.0, 0.1)), ("none", (0, 0))]:
        task.options = dataclasses.replace(o, regularization=flag)
        assert task.regularised == expected


@pytest.mark.parametrize(
    "bad, message",
    [({"d_model": 30, "heads": 4}, "not divisible"), ({"batch_tokens": 0}, "batch_tokens"), ({"beam": 0}, "beam")],
)
def test_bad_options_are_one_line_errors(bad, message):
    with pytest.raises(ValueError, match=message) as e:
        TransformerOptions(data_dir="x", **bad)
    assert "\n" not in str(e.value)


def test_a_missing_evaluation_file_is_named(corpus, tmp_path):
    for name in ("train.en", "train.de", "newstest2014.en"):
        (tmp_path / name).write_bytes(open(f"{corpus}/{name}", "rb").read())
    task = TransformerWMT(TransformerOptions(data_dir=str(tmp_path), **TINY), 0, torch.device("cpu"))
    with pytest.raises(ValueError, match="newstest2014.de") as e:
        task.eval_data()
    assert "\n" not in str(e.value)


def trial(tmp_path, corpus, method="variational_dropout", config=None, steps=20) -> Trial:
    options = dataclasses.asdict(
        TransformerOptions(data_dir=corpus, train_steps=steps, eval_every=10, **{**TINY, "eval_sentences": 10})
    )
    config = config or {"weight": 1e-5, "thresholds": [3.0, 0.0]}
    return Trial(
        sweep="t",
        sweep_dir=str(tmp_path / "sweep"),
        trial_id=f"{method}-x-s0",
        config_hash="x",
        task="transformer_wmt14_ende",
        task_options=options,
        method=method,
        method_config=config,
        target_sparsity=None,
        seed=0,
        hp_columns=(("threshold", "float"), ("weight", "float")),
    )


def test_vd_thresholds_and_both_bleu_scores_become_rows(tmp_path, corpus):
    t = trial(tmp_path, corpus)
    row = run_trial(t, LocalSession(str(tmp_path / "ckpt")), torch.device("cpu"))
    assert row["metric"] == "bleu_tokenized" and row["primary"]
    trials = ds.dataset(str(tmp_path / "sweep" / "results" / "trials")).to_table().to_pandas()
    assert sorted(zip(trials["threshold"], trials["metric"])) == [
        (0.0, "bleu_tokenized"),
        (0.0, "sacrebleu"),
        (3.0, "bleu_tokenized"),
        (3.0, "sacrebleu"),
    ]
    assert trials.groupby("threshold")["sparsity"].first()[0.0] >= trials.groupby("threshold")["sparsity"].first()[3.0]
    sacre = trials[trials["metric"] == "sacrebleu"]
    assert sacre["metric_detail"].str.contains("tok:13a").all() and not sacre["primary"].any()
    evals = ds.dataset(str(tmp_path / "sweep" / "results" / "evals")).to_table().to_pandas()
    assert len(evals) == 2 * 2 * 2  # 2 evaluations x 2 thresholds x 2 metrics


def test_a_resumed_trial_ends_as_an_uninterrupted_one(tmp_path, corpus):
    whole = trial(tmp_path / "a", corpus, "magnitude", {"begin_step": 2, "end_step": 16, "frequency": 2})
    whole = dataclasses.replace(whole, target_sparsity=0.5)
    straight = run_trial(whole, LocalSession(str(tmp_path / "a" / "ckpt")), torch.device("cpu"))
    split = dataclasses.replace(whole, sweep_dir=str(tmp_path / "b" / "sweep"))
    session = LocalSession(str(tmp_path / "b" / "ckpt"))
    assert run_trial(split, session, torch.device("cpu"), max_steps=10)["status"] == "stopped"
    resumed = run_trial(split, session, torch.device("cpu"))
    assert resumed["value"] == straight["value"] and resumed["sparsity"] == straight["sparsity"] == 0.5
    a = torch.load(tmp_path / "a" / "ckpt" / "state.pt", weights_only=True)["engine"]["model"]
    b = torch.load(tmp_path / "b" / "ckpt" / "state.pt", weights_only=True)["engine"]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_debug_runs_the_tiny_transformer_spec_in_one_process(tmp_path):
    from tests.conftest import sparsity_cli

    spec = os.path.join(os.path.dirname(__file__), "..", "sweep", "specs", "transformer_tiny_cpu.yaml")
    args = ("debug", spec, "--trial", "4", "--steps", "20", "--log-every", "10", "--storage", str(tmp_path))
    result = sparsity_cli(*args, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "variational_dropout" in result.stdout and "stopped at step 20: bleu_tokenized" in result.stdout
    assert [line.split()[1] for line in result.stdout.splitlines() if line.startswith("step")] == ["10", "20"]


def test_sparsity_tasks_lists_the_transformer_and_its_options():
    from tests.conftest import sparsity_cli

    result = sparsity_cli("tasks", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "transformer_wmt14_ende: metric bleu_tokenized (max)" in result.stdout
    assert "resnet50_imagenet: metric top1 (max)" in result.stdout
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("regularization"))
    assert "'dropout+label_smoothing'" in line
