"""Transformer training throughput, dense and each sparsifier, in one process (no Ray): target tokens per second.

    .venv/bin/python bench/throughput_transformer.py [--d-model 512] [--layers 6] [--vocab 33288]
        [--batch-tokens 4096] [--steps 3] [--rounds 3] [--engine torch|deepspeed] [--peak-tflops 989]

Data: the task's own pipeline (SentencePiece, token-count batches) on the synthetic corpus; the model's vocabulary is
set to --vocab (the study's 33,288) so the shared embedding/softmax costs what it does on WMT. Throughput counts
target tokens without padding (fairseq's "wps"). On a GPU the task trains in bf16 autocast. With --peak-tflops the
report adds model-FLOPs utilisation at 6 FLOPs per parameter per target token (plus attention, ignored).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import methods
from trainables.tasks.transformer.model import PAD
from trainables.tasks.transformer.task import TransformerOptions, TransformerWMT
from trainables.training import engine as engines
from trainables.training.loop import micro_batches

CONFIGS = {
    "dense": {},
    "magnitude": {"begin_step": 0, "end_step": 10**6, "frequency": 100},
    "random": {"begin_step": 0, "end_step": 10**6, "frequency": 100},
    "variational_dropout": {"weight": 2.2e-7, "thresholds": [3.0]},
    "l0": {"weight": 2.2e-7},
}


class BenchTask(TransformerWMT):
    vocab = 33_288

    def model_config(self):
        cfg = super().model_config()
        return type(cfg)(**{**cfg.__dict__, "vocab_size": max(self.vocab, cfg.vocab_size)})


def setup(name: str, args, device):
    options = TransformerOptions(
        data_dir="synthetic",
        d_model=args.d_model,
        d_ff=4 * args.d_model,
        heads=8,
        layers=args.layers,
        batch_tokens=args.batch_tokens,
        train_steps=10**6,
        vocab_size=1000,
    )
    BenchTask.vocab = args.vocab
    task = BenchTask(options, 0, device)
    torch.manual_seed(0)
    model = task.build_model()
    cls = methods.get(name)
    sparsifier = cls(cls.Config(**CONFIGS[name]), 0.9 if cls.targets_sparsity else None, 0)
    sparsifier.prepare(model)
    sparsifier.apply_masks()
    optimizer = task.build_optimizer(model, no_decay=sparsifier.own_parameters())
    config = engines.EngineConfig(args.engine, 0, task.micro_batches)
    params = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in sparsifier.own_parameters())
    return task, sparsifier, engines.build(config, model, optimizer, task.micro_batch_size), params


def steps(state, first: int, count: int, device) -> tuple[float, int]:
    task, sparsifier, engine, _ = state
    batches = [task.batch(step) for step in range(first, first + count)]  # data preparation is not timed
    tokens = sum(int((tgt != PAD).sum()) for _, tgt in batches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for step, batch in zip(range(first, first + count), batches):
        engine.set_lr(task.learning_rate(step))
        for micro in micro_batches(batch, task.micro_batches):
            engine.backward(task.loss(engine, micro) + sparsifier.penalty(step))
        engine.step()
        sparsifier.after_step(step)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--vocab", type=int, default=33_288)
    p.add_argument("--batch-tokens", type=int, default=4096)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--engine", choices=["torch", "deepspeed"], default="torch")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--peak-tflops", type=float, default=0.0)
    p.add_argument("--methods", default=",".join(CONFIGS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = args.methods.split(",")
    states = {n: setup(n, args, device) for n in names}
    for state in states.values():
        steps(state, 1, 2, device)  # warm-up (and the first mask update)
    rates = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names:  # interleaved, so drift in machine speed hits every method alike
            seconds, tokens = steps(states[n], 3 + r * args.steps, args.steps, device)
            rates[n].append(tokens / seconds)
    dense = statistics.median(rates[names[0]])
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(
        f"Transformer d {args.d_model}, {args.layers}+{args.layers} layers, vocab {args.vocab}, "
        f"{args.batch_tokens} padded tokens/step, {args.engine} engine, {where}, torch {torch.__version__}; "
        f"median of {args.rounds} rounds x {args.steps} steps"
    )
    print("| method | target tokens/s | throughput ÷ dense" + (" | MFU |" if args.peak_tflops else " |"))
    print("|---|---|---|" + ("---|" if args.peak_tflops else ""))
    for n in names:
        rate = statistics.median(rates[n])
        flops = 6 * states[n][3] * rate
        mfu = f" | {100 * flops / (1e12 * args.peak_tflops):.1f}% |" if args.peak_tflops else " |"
        print(f"| {n} | {rate:,.0f} | {rate / dense:.3f}" + mfu)


if __name__ == "__main__":
    main()
