"""Training step time of every method relative to dense, in one process (ratios, not absolute targets).

    .venv/bin/python bench/step_time.py [--width 128] [--steps 300] [--rounds 5] [--threads 1]

Each round times `steps` training steps of every method on the Cubist Spiral MLP, methods interleaved so
machine noise hits all alike; the median over rounds is reported, with the ratio to dense.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import methods
from trainables.tasks.cubist import CubistOptions, CubistSpiral

CONFIGS = {
    "dense": {},
    "magnitude": {"begin_step": 0, "end_step": 10_000, "frequency": 100},
    "random": {"begin_step": 0, "end_step": 10_000, "frequency": 100},
    "variational_dropout": {"weight": 2e-5, "thresholds": [0.5]},
    "l0": {"weight": 0.01},
}


def setup(name: str, width: int):
    task = CubistSpiral(CubistOptions(width=width), seed=0, device=torch.device("cpu"))
    torch.manual_seed(0)
    model = task.build_model()
    cls = methods.get(name)
    sparsifier = cls(cls.Config(**CONFIGS[name]), target=0.9 if cls.targets_sparsity else None, seed=0)
    sparsifier.prepare(model)
    return task, model, sparsifier, task.build_optimizer(model, sparsifier.own_parameters())


def run_steps(state, first: int, steps: int) -> float:
    task, model, sparsifier, optimizer = state
    start = time.perf_counter()
    for step in range(first, first + steps):
        loss = task.loss(model, task.batch(step)) + sparsifier.penalty(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sparsifier.after_step(step)
    return (time.perf_counter() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    states = {name: setup(name, args.width) for name in CONFIGS}
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for state in states.values():
        run_steps(state, 1, 20)  # warm-up
    for r in range(args.rounds):
        for name, state in states.items():
            times[name].append(run_steps(state, 21 + r * args.steps, args.steps))
    dense = statistics.median(times["dense"])
    print(
        f"Cubist Spiral MLP width {args.width}, batch 128, {args.threads} thread(s), torch {torch.__version__}, "
        f"median of {args.rounds} rounds x {args.steps} steps"
    )
    print("| method | ms/step | ÷ dense |\n|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {1000 * median:.3f} | {median / dense:.2f} |")


if __name__ == "__main__":
    main()
