"""A small sweep written as real Parquet results, with every section of the report a State-of-Sparsity sweep can
have: a dense baseline, two pruning methods at two targets (two configurations, two seeds), a method that learns
its sparsity, per-layer rows, a lottery-ticket stage, a failed trial, and the manifest and spec a run writes.
Shared by the HTML report's tests (tests/test_report_html.py, tests/test_report_browser.py)."""

from __future__ import annotations

import json

from trainables.records.results import write_rows
from trainables.trial import Trial

HPS = (("lr", "float"), ("variant", "str"))
SPEC = """name: html
task: cubist_spiral
methods:
  magnitude: {lr: [0.1, 0.2]}
  random: {}
  variational_dropout: {}
sparsity: [0.5, 0.9]
seeds: [0, 1]
"""


def _trial(folder, method, target, seed, config, lr, stage="main", parent=None, variant=None):
    return Trial(
        sweep="html",
        sweep_dir=str(folder),
        trial_id=f"{stage}-{method}-{target}-{config}-s{seed}",
        config_hash=config,
        task="cubist_spiral",
        task_options={"lr": lr},
        method=method,
        method_config={"variant": variant} if variant else {},
        target_sparsity=target,
        seed=seed,
        stage=stage,
        parent_trial_id=parent,
        hp_columns=HPS,
    )


def _write(trial, value, achieved, status="completed"):
    row = {"source": "sweep", "status": status, "metric": "accuracy", "mode": "max", "value": value}
    row.update({"sparsity": achieved, "steps": 100 if status == "completed" else 40, "wall_time_s": 2.0})
    write_rows(trial, "trials", [row])
    layers = [
        {
            "layer": "0.weight",
            "shape": "16x2",
            "numel": 32,
            "nonzero": round(32 * (1 - achieved)),
            "sparsity": achieved,
        },
        {
            "layer": "2.weight",
            "shape": "1x16",
            "numel": 16,
            "nonzero": round(16 * (1 - achieved)),
            "sparsity": achieved,
        },
    ]
    write_rows(trial, "layers", layers)
    return trial.trial_id


def write_sweep(folder, planned_extra: int = 0) -> dict:
    """Write the sweep under `folder`; `planned_extra` more trial ids in the manifest than were run (a sweep still
    in progress). Returns {"ids": the trial ids written, "failed": the failed one's id}."""
    ids = []
    for seed in (0, 1):
        ids.append(_write(_trial(folder, "dense", 0.0, seed, "dense", 0.1), 0.99 - 0.01 * seed, 0.0))
        for target in (0.5, 0.9):
            for config, lr, base in (("mag-a", 0.1, 0.97), ("mag-b", 0.2, 0.93)):
                value = base - (0.1 if target == 0.9 else 0.0) - 0.01 * seed
                ids.append(_write(_trial(folder, "magnitude", target, seed, f"{config}{target}", lr), value, target))
            value = 0.9 - (0.3 if target == 0.9 else 0.0) + 0.01 * seed
            ids.append(_write(_trial(folder, "random", target, seed, f"rnd{target}", 0.1), value, target))
        for config, achieved in (("vd-a", 0.501), ("vd-b", 0.899), ("vd-c", 0.72)):
            ids.append(
                _write(_trial(folder, "variational_dropout", None, seed, config, 0.1), 0.95 - achieved / 5, achieved)
            )
    failed = _write(_trial(folder, "random", 0.9, 2, "rnd0.9", 0.1), float("nan"), 0.0, status="failed")
    ids.append(failed)
    for seed in (0, 1):
        parent = f"main-magnitude-0.9-mag-a0.9-s{seed}"
        for variant, value in (("scratch_e", 0.80), ("lottery", 0.84)):
            kid = _trial(folder, "magnitude", 0.9, seed, f"lt-{variant}", 0.1, "lottery", parent, variant)
            ids.append(_write(kid, value + 0.01 * seed, 0.9))
    planned = ids + [f"later-{i}" for i in range(planned_extra)]
    manifest = {
        "plan_hash": "0123456789abcdef0123456789abcdef",
        "trial_ids": planned,
        "created": "2026-12-04T01:00:00+0000",
        "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "ray": "2.60.0"},
    }
    (folder / "sweep.json").write_text(json.dumps(manifest))
    (folder / "spec.yaml").write_text(SPEC)
    return {"ids": ids, "failed": failed}


def markdown_tables(text: str) -> list[int]:
    """The number of body rows of each table in a Markdown report, in order."""
    counts, inside = [], False
    for line in text.splitlines():
        if line.startswith("|"):
            if not inside:
                counts.append(-1)  # the separator row follows the header
                inside = True
            counts[-1] += 1 if not line.startswith("|---") else 0
        else:
            inside = False
    return counts
