"""Packed against unpacked training of Cubist-Spiral MLPs, side by side in one run, through the project's loops.

    .venv/bin/python bench/packing.py                      # K in {1,16,64,256,1024}, widths 3 and 16
    .venv/bin/python bench/packing.py --full-pack 256      # also one 256-member pack of the study's 19,500 steps

Per width: the unpacked loop (training/loop.py run_trial, one trial) and the pack's loop (packing/loop.py
run_pack, K members), both timed over the same training steps after a warm-up, evaluation excluded (both
evaluate only at the end here). Prints µs per member-step, the ratio, and how close the packed step comes to
this machine's large-GEMM rate (the FLOPs of the MLP's forward and backward matmuls at that rate).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time

import torch

from sweep import plan, spec
from trainables.packing.loop import run_pack
from trainables.packing.pack import Pack, pack_id
from trainables.training.loop import run_trial
from trainables.training.session import LocalSession

WARMUP = 30


class Quiet(LocalSession):
    """No checkpoints: the bench times training steps only."""

    def report(self, metrics, state):
        pass


def trials(width: int, members: int, folder: str):
    """The first `members` trials of a study-like grid: 3 learning rates x 3 schedules x 5 repeats (seeds) x
    target sparsities (as many as needed), the study's `imp` (global magnitude pruning every 97 steps)."""
    targets = [round(0.5 + 0.49 * i / 64, 4) for i in range(64)][: max(1, -(-members // 45))]
    data = {
        "name": "bench",
        "task": "cubist_spiral",
        "task_options": {
            "width": width,
            "epochs": 50,
            "eval_every": 19500,
            "lr": [0.05, 0.1, 0.2],
            "lr_schedule": ["cosine", "multistep", "constant"],
        },
        "methods": {"magnitude": {"begin_step": 97, "end_step": 19303, "frequency": 97, "allocation": "global"}},
        "sparsity": targets,
        "seeds": [0, 1, 2, 3, 4],
    }
    return plan.expand(spec.parse(data, "bench"), folder)[:members]


def timed(run, steps: int) -> float:
    """Seconds per step between the warm-up and the last step."""
    marks = {}

    def on_step(step, *_):
        if step in (WARMUP, steps):
            marks[step] = time.perf_counter()

    run(on_step)
    return (marks[steps] - marks[WARMUP]) / (steps - WARMUP)


def unpacked_step(width: int, steps: int, folder: str, device: torch.device) -> float:
    trial = trials(width, 1, folder)[0]
    return timed(lambda cb: run_trial(trial, Quiet(folder + "/u"), device, max_steps=steps, on_step=cb), steps)


def packed_step(width: int, members: int, steps: int, folder: str, device: torch.device) -> float:
    group = trials(width, members, folder)
    pack = Pack(pack_id(group), tuple(group))
    return timed(lambda cb: run_pack(pack, Quiet(folder + "/p"), device, max_steps=steps, on_step=cb), steps)


def flops_per_member_step(width: int, batch: int = 128) -> float:
    """Forward matmuls 2·B·Σ(in·out), backward twice that (the input's gradient is not needed at layer 1)."""
    dims = [2, width, width, width, 1]
    forward = sum(2 * batch * a * b for a, b in zip(dims, dims[1:]))
    return 3 * forward - 2 * batch * dims[0] * dims[1]


def gemm_rate(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - started)


def full_pack(width: int, members: int, folder: str, device: torch.device) -> float:
    group = [dataclasses.replace(t, sweep_dir=folder) for t in trials(width, members, folder)]
    started = time.perf_counter()
    run_pack(Pack(pack_id(group), tuple(group)), Quiet(folder + "/full"), device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 16, 64, 256, 1024])
    parser.add_argument("--widths", type=int, nargs="+", default=[3, 16])
    parser.add_argument("--steps", type=int, default=300, help="steps timed per measurement (after the warm-up)")
    parser.add_argument("--unpacked-steps", type=int, default=1000)
    parser.add_argument("--full-pack", type=int, metavar="K", help="also time one K-member pack of 19,500 steps")
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the GEMM-rate line is measured on the CPU)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    rate = gemm_rate()
    print(f"one thread; large-GEMM rate {rate / 1e9:.1f} GFLOP/s; {os.cpu_count()} CPUs; torch {torch.__version__}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for width in args.widths:
            alone = unpacked_step(width, args.unpacked_steps, folder, device) * 1e6
            floor = flops_per_member_step(width) / rate * 1e6
            print(f"\nwidth {width}: unpacked {alone:.1f} µs per step; GEMM floor {floor:.2f} µs per member-step")
            print(f"  {'K':>5}  {'µs/member-step':>14}  {'unpacked / packed':>17}  {'% of GEMM rate':>14}")
            for k in args.members:
                per = packed_step(width, k, args.steps, folder, device) * 1e6 / k
                rows.append({"width": width, "K": k, "packed_us": per, "unpacked_us": alone, "floor_us": floor})
                print(f"  {k:>5}  {per:>14.1f}  {alone / per:>16.1f}x  {100 * floor / per:>13.0f}%")
        if args.full_pack:
            for width in args.widths:
                wall = full_pack(width, args.full_pack, folder, device)
                rows.append({"width": width, "K": args.full_pack, "full_pack_s": wall})
                print(
                    f"\none {args.full_pack}-member pack at width {width}, 19,500 steps (+ 1 evaluation): {wall:.0f} s"
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gemm_flops": rate, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
