"""Multi-worker trials on a real local Ray: a Tune trial launches 2 Ray Train workers (gloo on CPU) that train a
narrow ResNet-50 data-parallel with magnitude pruning, through DeepSpeed (ZeRO-2) or plain torch (DDP)."""

from __future__ import annotations

import glob
import math
import os
import signal
import subprocess
import sys
import time

import psutil
import pyarrow.dataset as ds
import pytest
import torch

from tests.conftest import sparsity_cli

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SPEC = """
name: two-workers
task: resnet50_imagenet
task_options: {{data_dir: synthetic, synthetic_images: 64, synthetic_classes: 4, width: 4, image_size: 32,
  batch_size: 16, train_steps: 12, warmup_epochs: 0, lr_per_256: 4.0, label_smoothing: 0.0, eval_every: 4,
  eval_batch_size: 32, loader_workers: 0}}
methods:
  magnitude: {{begin_step: 2, end_step: 8, frequency: 2}}
sparsity: [0.8]
resources: {{workers: 2, engine: {engine}, zero_stage: {stage}}}
"""


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The two-worker sweep for an (engine, ZeRO stage), run once per module and shared by its tests."""
    done = {}

    def run(engine: str, stage: int):
        if (engine, stage) not in done:
            folder = tmp_path_factory.mktemp(f"{engine}{stage}")
            spec = folder / "spec.yaml"
            spec.write_text(SPEC.format(engine=engine, stage=stage))
            result = sparsity_cli("run", str(spec), "--storage", str(folder), "--num-cpus", "4", timeout=400)
            assert result.returncode == 0, result.stdout + result.stderr
            done[engine, stage] = folder / "two-workers"
        return done[engine, stage]

    return run


def rank_states(sweep) -> list[dict]:
    """Both ranks' states from the trial's last Ray Train checkpoint."""
    checkpoints = sorted(p for p in glob.glob(str(sweep / "train" / "*" / "checkpoint_*")) if os.path.isdir(p))
    return [torch.load(f"{checkpoints[-1]}/state-rank{r}.pt", weights_only=True) for r in (0, 1)]


@pytest.mark.parametrize("engine, stage", [("deepspeed", 2), ("torch", 0)])
def test_two_workers_agree_on_masks_and_learn(sweeps, engine, stage):
    sweep = sweeps(engine, stage)
    evals = ds.dataset(str(sweep / "results" / "evals")).to_table().to_pandas()
    assert list(evals["step"]) == [4, 8, 12]  # one writer (rank 0), no duplicate rows
    assert evals["loss"].iloc[-1] < 0.6 * evals["loss"].iloc[0], evals
    trials = ds.dataset(str(sweep / "results" / "trials")).to_table().to_pandas()
    assert abs(trials.loc[0, "sparsity"] - 0.8) < 0.001 and trials.loc[0, "status"] == "completed"
    ranks = rank_states(sweep)
    masks = [r["sparsifier"]["masks"] for r in ranks]
    assert len(masks[0]) == 54 and all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0])
    weights = [r["engine"]["model"] for r in ranks]
    params = [k for k in weights[0] if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(params) == 161 and all(torch.equal(weights[0][k], weights[1][k]) for k in params)  # replicas in step
    # (batch-norm running statistics are per rank: each updates them from its own shard)


def test_a_sigkilled_train_worker_is_restarted_by_ray_train_not_tune(sweeps, tmp_path):
    """SIGKILL one of the two Ray Train workers after the first checkpoint. Tune may not retry
    (failure.max_failures: 0), so only Ray Train's own FailureConfig (failure.worker_max_failures) can bring the
    trial home: it restarts the worker group from the checkpoint, and the trial ends exactly as the
    uninterrupted run did: same rows, same masks, weights and sparsifier state on both ranks."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(engine="torch", stage=0) + "failure: {max_failures: 0, worker_max_failures: 2}\n")
    exe = os.path.join(os.path.dirname(sys.executable), "sparsity")
    driver = subprocess.Popen(
        [exe, "run", str(spec), "--storage", str(tmp_path), "--num-cpus", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killed = None
    try:
        deadline = time.time() + 300
        while driver.poll() is None and time.time() < deadline and killed is None:
            if glob.glob(str(tmp_path / "two-workers" / "train" / "*" / "checkpoint_*")):
                workers = [p for p in psutil.Process(driver.pid).children(recursive=True) if _is_train_worker(p)]
                if workers:
                    killed = workers[-1].pid
                    workers[-1].send_signal(signal.SIGKILL)
            time.sleep(0.02)
        out, _ = driver.communicate(timeout=400)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert killed is not None, "no Ray Train worker was found to kill"
    assert driver.returncode == 0, out
    assert "1/1 trials finished" in out and "retrying" not in out, out

    sweep, straight = tmp_path / "two-workers", sweeps("torch", 0)
    for table in ("evals", "trials", "layers"):
        got, want = (ds.dataset(str(s / "results" / table)).to_table().to_pandas() for s in (sweep, straight))
        cols = [c for c in want.columns if c != "wall_time_s"]
        assert len(got) == len(want) > 0 and got[cols].equals(want[cols]), table
    for got, want in zip(rank_states(sweep), rank_states(straight)):
        for key in ("sparsifier", "engine", "step"):
            assert _same(got[key], want[key]), key


def _is_train_worker(proc) -> bool:
    try:
        return "RayTrainWorker" in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture
def another_local_ray():
    """A second embedded Ray on this machine (another user's sweep, say), for the test's duration."""
    code = "import ray, sys; ray.init(num_cpus=1, include_dashboard=False); print('up', flush=True); sys.stdin.read()"
    other = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert other.stdout.readline().strip() == "up"
        yield
    finally:
        os.killpg(other.pid, signal.SIGKILL)
        other.wait(timeout=30)


def test_bundled_tiny_spec_runs_multi_worker_trials_back_to_back(tmp_path, another_local_ray):
    """Two 2-worker trials in one sweep: the second must get the workers the first released. With Ray 2.60 it
    hung until the embedded Ray served the state API that Ray Train uses to free placement groups, and again
    when another Ray ran on the machine (the cleaner found two clusters and gave up): hence the second one."""
    result = sparsity_cli(
        "run",
        os.path.join(os.path.dirname(__file__), "..", "sweep", "specs", "resnet50_tiny_cpu.yaml"),
        "--storage",
        str(tmp_path),
        "--num-cpus",
        "3",
        "--report",
        timeout=280,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2/2 trials finished" in result.stdout and "| 0.8 |" in result.stdout
    trials = ds.dataset(str(tmp_path / "resnet50-tiny-cpu" / "results" / "trials")).to_table().to_pandas()
    assert sorted(trials["method"]) == ["magnitude", "random"] and (trials["metric"] == "top1").all()


TRANSFORMER_SPEC = """
name: two-workers-transformer
task: transformer_wmt14_ende
task_options: {{data_dir: synthetic, cache_dir: {cache}, synthetic_sentences: 4000, vocab_size: 300, d_model: 32,
  d_ff: 64, heads: 4, layers: 1, batch_tokens: 2048, micro_batches: 2, train_steps: 60, warmup_steps: 20,
  lr_constant: 0.5, regularization: none, eval_every: 30, eval_sentences: 30, extra_length: 5}}
methods:
  magnitude: {{begin_step: 5, end_step: 30, frequency: 5}}
sparsity: [0.5]
resources: {{workers: 2, engine: deepspeed, zero_stage: 2}}
"""


def test_two_deepspeed_workers_train_the_transformer(tmp_path):
    """ZeRO-2 over gloo: token batches sharded over the ranks, accumulation, masks in step, BLEU decoded on both
    ranks' halves of the evaluation sentences and gathered."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(TRANSFORMER_SPEC.format(cache=tmp_path / "cache"))
    result = sparsity_cli("run", str(spec), "--storage", str(tmp_path), "--num-cpus", "3", timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    sweep = tmp_path / "two-workers-transformer"
    evals = ds.dataset(str(sweep / "results" / "evals")).to_table().to_pandas()
    assert list(evals["step"]) == [30, 30, 60, 60] and list(evals["metric"][:2]) == ["bleu_tokenized", "sacrebleu"]
    # an untrained model's loss is about ln(300 subwords) = 5.7
    assert evals["loss"].iloc[-1] < min(evals["loss"].iloc[0], 0.6 * math.log(300)), evals["loss"]
    assert evals["value"].notna().all()
    trials = ds.dataset(str(sweep / "results" / "trials")).to_table().to_pandas()
    assert (trials["sparsity"] - 0.5).abs().max() < 0.001 and (trials["status"] == "completed").all()
    checkpoints = sorted(p for p in glob.glob(str(sweep / "train" / "*" / "checkpoint_*")) if os.path.isdir(p))
    ranks = [torch.load(f"{checkpoints[-1]}/state-rank{r}.pt", weights_only=True) for r in (0, 1)]
    masks = [r["sparsifier"]["masks"] for r in ranks]
    assert "embedding.weight" in masks[0] and all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0])
    weights = [r["engine"]["model"] for r in ranks]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
