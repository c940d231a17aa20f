"""Where a finished sweep's time went: per stage, method and model, its Tune trials (packs or single trials), their
members, steps and wall time, and the cost per member-step, from the results alone.

    .venv/bin/python bench/sweep_profile.py SWEEP_DIR [--wall SECONDS]

A unit's wall time is its trials rows' `wall_time_s` (the pack's training time, evaluation included; not Ray's
start-up or the time a unit waited for a slot). `--wall` (the whole run's wall time, e.g. from /usr/bin/time)
adds how much of it the units' busy time fills on the machine's trial slots.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from analysis import tables  # noqa: E402
from analysis.load import read_arrow, to_frame  # noqa: E402


def profile(sweep_dir: str):
    columns = ["trial_id", "stage", "method", "width", "steps", "wall_time_s", "primary"]
    frame = to_frame(read_arrow(sweep_dir, "trials", columns, unit_column="unit"))
    frame = frame[frame["primary"].fillna(True).astype(bool)].drop_duplicates("trial_id")
    units = frame.groupby("unit", observed=True).agg(
        stage=("stage", "first"),
        method=("method", "first"),
        width=("width", "first"),
        members=("trial_id", "size"),
        steps=("steps", "max"),
        wall=("wall_time_s", "max"),
    )
    units["member_steps"] = units["members"] * units["steps"]
    grouped = units.groupby(["stage", "method", "width"], sort=False)
    out = grouped.agg(
        units=("members", "size"),
        members=("members", "sum"),
        steps=("steps", "max"),
        unit_wall_s=("wall", "mean"),
        busy_s=("wall", "sum"),
        member_steps=("member_steps", "sum"),
    )
    out["us_per_member_step"] = (out["busy_s"] / out["member_steps"] * 1e6).round(1)
    out["unit_wall_s"] = out["unit_wall_s"].round(0)
    out["busy_s"] = out["busy_s"].round(0)
    return out.reset_index()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep_dir")
    p.add_argument("--wall", type=float, help="the run's wall time in seconds")
    p.add_argument("--slots", type=int, default=os.cpu_count() or 1, help="trial slots (default: CPUs)")
    args = p.parse_args(argv)
    out = profile(args.sweep_dir)
    print(tables.to_markdown(out, False))
    busy = out["busy_s"].sum()
    print(f"\nunits' busy time: {busy:,.0f} s over {args.slots} slots = {busy / args.slots:,.0f} s if perfectly packed")
    if args.wall:
        print(f"run wall time: {args.wall:,.0f} s; the slots were busy {busy / args.slots / args.wall:.0%} of it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
