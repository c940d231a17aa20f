"""The bundled tiny Transformer spec as a real Ray sweep: all four methods, BLEU by method x sparsity."""

from __future__ import annotations

import os

import pyarrow.dataset as ds
import pytest
import yaml

from tests.conftest import sparsity_cli

pytestmark = [pytest.mark.ray]

SPEC = os.path.join(os.path.dirname(__file__), "..", "sweep", "specs", "transformer_tiny_cpu.yaml")


@pytest.mark.timeout(600)
def test_tiny_transformer_spec_sweeps_all_four_methods_to_a_bleu_report(tmp_path, write_spec):
    """The bundled tiny spec with one weight per learned method (6 of its 8 trials) and one evaluation, of 50
    sentences, at the end (the per-step evaluations: tests/test_transformer_task.py)."""
    data = yaml.safe_load(open(SPEC))
    data["task_options"].update(eval_every=300, eval_sentences=50)
    data["methods"]["variational_dropout"]["weight"] = 1.0e-5
    data["methods"]["l0"]["weight"] = 3.0e-4
    result = sparsity_cli("run", write_spec(data), "--storage", str(tmp_path), "--report", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6/6 trials finished" in result.stdout
    sweep = tmp_path / "transformer-tiny-cpu"
    trials = ds.dataset(str(sweep / "results" / "trials")).to_table().to_pandas()
    assert set(trials["method"]) == {"magnitude", "random", "variational_dropout", "l0"}
    assert set(trials["metric"]) == {"bleu_tokenized", "sacrebleu"} and (trials["status"] == "completed").all()
    assert trials.groupby("metric").size().to_dict() == {"bleu_tokenized": 8, "sacrebleu": 8}  # VD: 3 thresholds
    bleu = trials[trials["metric"] == "bleu_tokenized"]
    # magnitude pruning to 50% keeps most of what 300 steps learn (measured 30.4; an untrained model scores 0)
    assert bleu[(bleu["method"] == "magnitude") & (bleu["target_sparsity"] == 0.5)]["value"].iloc[0] > 15
    readme = (sweep / "report" / "README.md").read_text()
    assert "Cells: bleu_tokenized" in readme and "| 0.5 | " in readme and "| 0.8 | " in readme
    assert "variational_dropout" in readme and "l0" in readme  # the learned methods' sparsity/BLEU points
