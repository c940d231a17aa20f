"""The combinatorial search for the sparsest network (Zhang & Papyan 2024; papers/sparsest-models.md §3), as two
stages of a sweep, after its pruning grid (if any):

- stage `search_structure` (phase 1): every structure (d1, d2, d3) of the grid trained dense inside a
  width-`search.width` model masked to its top-left block, so the active weights keep that width's initial scale;
- stage `search_masks` (phase 2): every eligible mask (methods/eligible.py) of the hidden layers inside one
  structure, the classifier dense, each trained from the same initialisation with the same recipe.

Phase 2's structure is the spec's `search.structure`, or (`auto`) the one phase 1 chose: the fewest dense
parameters (weights + biases) among the structures whose best run over the hyper-parameters and seeds reached
`search.target`; ties go to the higher accuracy, then to the first structure in (d1, d2, d3) order. The runner
records the choice in the sweep folder (CHOICE_FILE) when phase 2 starts; the planner reads it from there, so
`sparsity plan` and `status` know phase 2's trials once it is made. Everything here is torch-free.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

from methods import eligible

PHASE1, PHASE2 = "search_structure", "search_masks"  # stage names
STRUCTURE_METHOD, MASK_METHOD = "search_structure", "search_mask"  # their methods (stage-only, like fixed_mask)
STAGES = (PHASE1, PHASE2)
CHOICE_FILE = "search.json"


def dense_counts(chain: tuple[int, ...]) -> tuple[int, int]:
    """(weights, biases) of the dense chain of linear layers with these neurons per layer (inputs first)."""
    return sum(a * b for a, b in zip(chain, chain[1:])), sum(chain[1:])


def params(structure: tuple[int, ...], d_in: int, d_out: int) -> int:
    """Dense weights + biases of a structure: the ranking of phase 1 (the study's `bench_nnz`)."""
    return sum(dense_counts((d_in, *structure, d_out)))


def structures(max_width: int, hidden: int, d_in: int, d_out: int, below_params: int = 0) -> list[tuple[int, ...]]:
    """Phase 1's grid: every structure with widths in 1..max_width, in (d1, d2, ...) order; with `below_params`,
    only those with fewer dense weights + biases (the study's fixed-init searches: below the benchmark's)."""
    every = itertools.product(range(1, max_width + 1), repeat=hidden)
    return [s for s in every if not below_params or params(s, d_in, d_out) < below_params]


def layers(structure: tuple[int, ...], d_in: int) -> list[tuple[int, int]]:
    """(inputs, outputs) of each searched (hidden) layer's block: d_in -> d1, d1 -> d2, d2 -> d3."""
    widths = (d_in, *structure)
    return list(zip(widths, widths[1:]))


def layer_choices(inp: int, out: int, per_nnz: int = 0) -> list[tuple[int, int]]:
    """(nnz, mask index) of one layer's eligible masks, nnz ascending then canonical order; `per_nnz` > 0 keeps
    the first that many per nnz value (the study's cap on W2 in its 99.5 % searches)."""
    return [
        (nnz, i)
        for nnz in eligible.nnz_range(inp, out)
        for i in range(min(eligible.count(inp, out, nnz), per_nnz or math.inf))
    ]


def _per_nnz(search, layer: int) -> int:
    caps = search.masks_per_nnz
    return caps[layer] if caps else 0


def mask_count(search, structure: tuple[int, ...], d_in: int) -> int:
    """Phase 2's masks for `structure` (not enumerated: counted per layer and hidden nnz)."""
    below = search.hidden_nnz_below
    by_total = {0: 1}
    for layer, (inp, out) in enumerate(layers(structure, d_in)):
        cap = _per_nnz(search, layer)
        here = {nnz: min(eligible.count(inp, out, nnz), cap or math.inf) for nnz in eligible.nnz_range(inp, out)}
        nxt: dict[int, int] = {}
        for total, n in by_total.items():
            for nnz, m in here.items():
                nxt[total + nnz] = nxt.get(total + nnz, 0) + n * m
        by_total = nxt
    return sum(n for total, n in by_total.items() if not below or total < below)


def mask_combos(search, structure: tuple[int, ...], d_in: int) -> Iterator[tuple[tuple[int, int], ...]]:
    """Phase 2's masks: ((nnz, index) per searched layer), the first layer outermost; with
    `hidden_nnz_below`, only those whose hidden-layer nonzeros sum below it (the study's 99.5 % caps)."""
    below = search.hidden_nnz_below
    per_layer = [layer_choices(i, o, _per_nnz(search, n)) for n, (i, o) in enumerate(layers(structure, d_in))]
    for combo in itertools.product(*per_layer):
        if not below or sum(nnz for nnz, _ in combo) < below:
            yield combo


def structure_config(structure: Iterable[int]) -> dict[str, int]:
    return {f"active_d{i + 1}": d for i, d in enumerate(structure)}


def mask_config(structure: tuple[int, ...], combo: tuple[tuple[int, int], ...]) -> dict[str, int]:
    config = structure_config(structure)
    for i, (nnz, index) in enumerate(combo):
        config[f"w{i + 1}_nnz"], config[f"w{i + 1}_mask"] = nnz, index
    return config


def structure_of(row: dict[str, Any], hidden: int = 3) -> tuple[int, ...]:
    return tuple(int(row[f"active_d{i + 1}"]) for i in range(hidden))


def choose(rows: Iterable[dict[str, Any]], target: float, d_in: int, d_out: int) -> dict[str, Any] | None:
    """Phase 1's answer from its trials rows (each with active_d1.., status, value): the structure with the
    fewest dense weights + biases whose best completed run reached `target`; ties: the higher best accuracy,
    then the first structure in order. None if no structure reached it. Also says what it was chosen from."""
    best: dict[tuple[int, ...], float] = {}
    runs = 0
    for row in rows:
        value = row.get("value")
        if row.get("status") != "completed" or value is None or value != value:
            continue
        runs += 1
        s = structure_of(row)
        best[s] = max(best.get(s, -math.inf), float(value))
    reached = [s for s, v in best.items() if v >= target]
    if not reached:
        top = max(best.items(), key=lambda kv: kv[1], default=None)
        return {"structure": None, "target": target, "runs": runs, "best": top and [list(top[0]), top[1]]}
    chosen = min(reached, key=lambda s: (params(s, d_in, d_out), -best[s], s))
    weights, biases = dense_counts((d_in, *chosen, d_out))
    return {
        "structure": list(chosen),
        "accuracy": best[chosen],
        "weights": weights,
        "params": weights + biases,
        "target": target,
        "runs": runs,
        "structures_tried": len(best),
        "structures_reaching": len(reached),
    }


def recorded(sweep_dir: str) -> dict[str, Any] | None:
    """The choice the runner recorded for phase 2 (None if phase 2 has not started)."""
    from trainables.records import paths, storage

    where = paths.join(sweep_dir, CHOICE_FILE)
    return json.loads(storage.read_text(where)) if storage.exists(where) else None


def phase2_pending(sweep_dir: str) -> bool:
    """Whether the sweep's spec has a search whose phase 2 is not planned yet (phase 1 chooses its structure), so
    the manifest does not count its trials."""
    from sweep import spec
    from trainables.records import paths

    try:
        parsed = spec.load(paths.spec_file(sweep_dir))
    except (spec.SpecError, OSError, ValueError):  # no readable spec: nothing to say
        return False
    return parsed.search is not None and not parsed.search.structure and recorded(sweep_dir) is None


def record(sweep_dir: str, choice: dict[str, Any]) -> None:
    from trainables.records import paths, storage

    storage.write_text(paths.join(sweep_dir, CHOICE_FILE), json.dumps(choice, indent=1))


METHODS = (STRUCTURE_METHOD, MASK_METHOD)
