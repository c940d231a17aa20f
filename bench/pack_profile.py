"""Where one pack's training step spends its time: torch's profiler over a pack of a sweep's, by operator.

    .venv/bin/python bench/pack_profile.py sweep/specs/sparsest_slice_fixed_95.yaml --method gmp --width 3

The pack is the first one `sparsity plan` lays out for that method and width (as bench/slice_projection.py
trains it), run alone through the pack's loop for --steps steps; steps after the first fifth are profiled. It
prints the step's wall time per member, the operators' self CPU time per step (top --top), and how much of the
step no operator accounts for (Python, the autograd engine's bookkeeping, the loop's own work).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from slice_projection import Quiet  # noqa: E402  (a session that keeps no reports; bench/ is on the path)

from sweep import packing, plan, spec  # noqa: E402
from trainables.packing.loop import run_pack  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec")
    p.add_argument("--method", required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    parsed = spec.load(args.spec)
    trials = [t for t in plan.expand(parsed, tempfile.mkdtemp(), args.spec) if t.stage == "main"]
    lay = packing.layout(trials, parsed.resources.pack, 1, bool(parsed.stages))
    pack = next(
        q
        for q in lay.packs
        if q.members[0].method == args.method and q.members[0].task_options.get("width") == args.width
    )
    k = len(pack.members)
    first = args.steps // 5
    state: dict = {}

    def on_step(step, *_):
        if step == first:
            state["prof"] = profile(activities=[ProfilerActivity.CPU]).__enter__()
            state["t0"] = time.perf_counter()
        elif step == args.steps:
            state["t1"] = time.perf_counter()
            state["prof"].__exit__(None, None, None)

    run_pack(pack, Quiet(tempfile.mkdtemp()), max_steps=args.steps, on_step=on_step)
    steps = args.steps - first
    wall = (state["t1"] - state["t0"]) / steps * 1e6  # µs per step (the profiler's own cost included)
    events = state["prof"].key_averages()
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)
    accounted = sum(e.self_cpu_time_total for e in events) / steps
    print(f"{args.method}, width {args.width}: a pack of {k}, {steps} steps profiled; torch {torch.__version__}")
    print(f"step: {wall:,.0f} µs ({wall / k:.1f} µs per member-step, under the profiler)")
    print(f"operators' self time: {accounted:,.0f} µs per step ({100 * accounted / wall:.0f} %); the rest "
          f"({100 * (1 - accounted / wall):.0f} %): Python and the loop's own work")  # fmt: skip
    print("\n| operator | calls per step | self µs per step | % of step |")
    print("|---|---|---|---|")
    for e in top[: args.top]:
        us = e.self_cpu_time_total / steps
        print(f"| {e.key} | {e.count / steps:.1f} | {us:,.0f} | {100 * us / wall:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
