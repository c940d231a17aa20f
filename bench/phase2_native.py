"""Phase 2 of the fixed-init 95 % slice's search, one pack of its (3, 2, 2) masks trained natively (the model is the
structure: sweep/plan.native_structure) against the same members in the masked width-16 model, alone, one thread.

    .venv/bin/python bench/phase2_native.py
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402
from slice_projection import Quiet  # noqa: E402  (a session that keeps no reports; bench/ is on the path)

from sweep import packing, plan, spec  # noqa: E402
from trainables.packing.loop import run_pack  # noqa: E402
from trainables.packing.pack import Pack, pack_id  # noqa: E402

torch.set_num_threads(1)
p = spec.load(os.path.join(os.path.dirname(__file__), "..", "sweep", "specs", "sparsest_slice_fixed_95.yaml"))
trials = plan.search_masks(p, tempfile.mkdtemp(), (3, 2, 2))
lay = packing.layout(trials, p.resources.pack, 2, False)
pack = lay.packs[0]
masked = tuple(dataclasses.replace(t, task_options={**t.task_options, "d1": 0, "d2": 0, "d3": 0}) for t in pack.members)
steps = 500
for name, members in (("native (3,2,2)", pack.members), ("masked width 16", masked), ("native (3,2,2)", pack.members)):
    times = {}
    run_pack(
        Pack(pack_id(list(members)), members),
        Quiet(tempfile.mkdtemp()),
        max_steps=steps,
        on_step=lambda s, *_, seen=times: seen.__setitem__(s, time.perf_counter()),
    )
    us = (times[steps] - times[steps // 5]) / (steps - steps // 5) / len(members) * 1e6
    print(f"{name}: pack of {len(members)}, {us:.1f} µs per member-step")
