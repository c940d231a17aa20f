"""ResNet-50 training throughput on synthetic data, dense and each sparsifier, in one process (no Ray).

    .venv/bin/python bench/throughput_resnet.py [--width 64] [--image-size 224] [--batch 8] [--steps 4] [--rounds 3]

On a GPU the task trains in bf16 and channels-last; the report adds model-FLOPs utilisation against the bf16 dense
peak given with --peak-tflops (989 for an H100 SXM), at 24.5 GFLOP per training image at 224 px.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import methods
from trainables.training.loop import build, micro_batches
from trainables.trial import Trial

CONFIGS = {
    "dense": {},
    "magnitude": {"begin_step": 0, "end_step": 10**6, "frequency": 100},
    "random": {"begin_step": 0, "end_step": 10**6, "frequency": 100},
    "variational_dropout": {"weight": 1e-7, "thresholds": [0.5], "init_log_sigma2": -15.0},
    "l0": {"weight": 1e-7},
}
GFLOP_PER_IMAGE = 24.5  # 4.09 GMAC x 2 x 3 (forward + backward), papers/performance-anchors.md §0


def setup(name: str, args, device):
    cls = methods.get(name)
    trial = Trial(
        sweep="bench",
        sweep_dir="/tmp/unused",
        trial_id=name,
        config_hash=name,
        task="resnet50_imagenet",
        task_options={
            "data_dir": "synthetic",
            "synthetic_images": 64 * args.batch,
            "width": args.width,
            "image_size": args.image_size,
            "batch_size": args.batch,
            "loader_workers": 0,
            "train_steps": 10**6,
        },
        method=name,
        method_config=CONFIGS[name],
        target_sparsity=0.9 if cls.targets_sparsity else None,
        seed=0,
        threads=args.threads,
    )
    return build(trial, device)


def steps(state, first: int, count: int, device) -> float:
    task, _, sparsifier, engine = state
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for step in range(first, first + count):
        engine.set_lr(task.learning_rate(step))
        for micro in micro_batches(task.batch(step), task.micro_batches):
            engine.backward(task.loss(engine, micro) + sparsifier.penalty(step))
        engine.step()
        sparsifier.after_step(step)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
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
    times = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names:
            times[n].append(steps(states[n], 3 + r * args.steps, args.steps, device))
    dense = statistics.median(times[names[0]])
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(
        f"ResNet-50 width {args.width}, {args.image_size} px, batch {args.batch}, {where}, torch {torch.__version__}; "
        f"median of {args.rounds} rounds x {args.steps} steps"
    )
    print("| method | images/s | throughput ÷ dense" + (" | MFU |" if args.peak_tflops else " |"))
    print("|---|---|---|" + ("---|" if args.peak_tflops else ""))
    for n in names:
        t = statistics.median(times[n])
        ips = args.batch / t
        mfu = f" | {100 * ips * GFLOP_PER_IMAGE / (1000 * args.peak_tflops):.1f}% |" if args.peak_tflops else " |"
        print(f"| {n} | {ips:.1f} | {dense / t:.3f}" + mfu)


if __name__ == "__main__":
    main()
