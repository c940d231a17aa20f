"""How long a packed sweep's training takes on this machine, projected from one pack of each kind it forms.

    .venv/bin/python bench/slice_projection.py sweep/specs/sparsest_slice_fixed_95.yaml --structure 3 2 2

For every kind of pack `sparsity plan` lays out (stage, method, width; with a search, phase 2 for `--structure`),
one such pack is trained alone through the pack's loop (packing/loop.py run_pack) for --steps steps, the steps
after the first fifth timed: µs per member-step, times the kind's trials and steps, gives its core-seconds.
Training only: evaluation, Ray and the waits for a slot come on top (bench/sweep_profile.py measures a finished
sweep's).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import methods  # noqa: E402
from sweep import packing, plan, spec  # noqa: E402
from trainables import tasks  # noqa: E402
from trainables.packing.loop import run_pack  # noqa: E402
from trainables.training.session import LocalSession  # noqa: E402


class Quiet(LocalSession):
    def report(self, metrics, state):
        pass


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec")
    p.add_argument("--structure", type=int, nargs="+", help="the search's phase-2 structure to project")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--slots", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    parsed = spec.load(args.spec)
    folder = tempfile.mkdtemp()
    trials = plan.expand(parsed, folder, args.spec)
    if parsed.search is not None and args.structure:
        trials += plan.search_masks(parsed, folder, tuple(args.structure))
    total = 0.0
    print("| stage | method | width | pack | trials | steps | µs per member-step | core-seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for stage, members in plan.stage_of(trials).items():
        lay = packing.layout(members, parsed.resources.pack, args.slots, bool(parsed.stages))
        kinds: dict[tuple, list] = {}
        for pack in lay.packs:
            t = pack.members[0]
            kinds.setdefault((t.method, t.task_options.get("width")), []).append(pack)
        for (method, width), packs in kinds.items():
            pack = packs[0]
            t = pack.members[0]
            steps = tasks.declared(t.task).total_steps_for(tasks.declared(t.task).Options(**t.task_options))
            steps *= methods.declared(t.method).Config(**t.method_config).training_rounds()
            times: dict[int, float] = {}
            run_pack(
                pack,
                Quiet(tempfile.mkdtemp()),
                max_steps=args.steps,
                on_step=lambda s, *_, seen=times: seen.__setitem__(s, time.perf_counter()),
            )
            first = args.steps // 5
            us = (times[args.steps] - times[first]) / (args.steps - first) / len(pack.members) * 1e6
            n = sum(len(q.members) for q in packs)
            core = us * n * steps / 1e6
            total += core
            print(
                f"| {stage} | {method} | {width} | {len(pack.members)} | {n} | {steps} | {us:.1f} | {core:,.0f} |",
                flush=True,
            )
    print(f"\ntotal {total:,.0f} core-seconds: {total / args.slots / 3600:.2f} h on {args.slots} slots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
