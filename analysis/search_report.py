"""The combinatorial search against the pruning algorithms (Zhang & Papyan 2024; papers/sparsest-models.md §3, §6):
what phase 1 chose, the sparsest network the search found at its target, the sparsest each algorithm reached at
the same target and initialisation, the gap between them as a table and a plot, and the two networks drawn.

A searched network is a mask inside the width-16 model (sweep/search.py), counted like any trial: Weight NNZ is
its nonzero weights (the hidden masks plus the dense classifier), Model NNZ adds its live biases.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from analysis import sparsest
from analysis.document import Block, Figure, Table
from analysis.load import read_arrow, to_frame
from sweep import search
from trainables.records import bits

COLUMNS = [
    "active_d1",
    "active_d2",
    "active_d3",
    "w1_nnz",
    "w1_mask",
    "w2_nnz",
    "w2_mask",
    "w3_nnz",
    "w3_mask",
    "lr",
    "lr_schedule",
]


STAGES = search.STAGES


def applies(everything: pd.DataFrame) -> bool:
    return "stage" in everything and everything["stage"].isin(search.STAGES).any()


def _structure(frame: pd.DataFrame) -> pd.Series:
    return "(" + frame[["active_d1", "active_d2", "active_d3"]].astype("Int64").astype(str).agg(", ".join, axis=1) + ")"


def frontier(searched: pd.DataFrame) -> pd.DataFrame:
    """Per measured Weight NNZ, the best accuracy of any searched network with that many nonzero weights, and the
    frontier: the best with at most that many."""
    best = searched.groupby("nnz_weights", sort=True)["value"].max().reset_index()
    best["frontier"] = best["value"].cummax()
    return best


def section(everything: pd.DataFrame, main: pd.DataFrame, folder: str, sweep_dir: str) -> list[Block]:
    if not applies(everything):
        return []
    done = everything[(everything["status"] == "completed") & everything["stage"].isin(search.STAGES)].copy()
    choice = search.recorded(sweep_dir) or {}
    target = float(choice.get("target", sparsest.TARGETS[0]))
    out = ["## Combinatorial search: the sparsest network against pruning", ""]
    phase1, phase2 = done[done["stage"] == search.PHASE1], done[done["stage"] == search.PHASE2]
    out += _phase1(phase1, choice, target)
    searched = phase2 if not phase2.empty else phase1
    if searched.empty:
        return out + ["(no completed search trials yet)", ""]
    reached = searched[searched["value"] >= target].sort_values(
        ["nnz_weights", "nnz_model", "value"], ascending=[True, True, False], kind="stable"
    )
    init = _init(searched)
    pruned = main[main.get("init", pd.Series("default", index=main.index)).fillna("default") == init]
    best = sparsest.best_per_target(pruned) if sparsest.applies(pruned) else pd.DataFrame()
    if reached.empty:
        top = searched.sort_values("value", ascending=False).iloc[0]
        out += [
            f"No searched network reached {target:.1%} accuracy (the best: {top['value']:.4f} at Weight NNZ "
            f"{int(top['nnz_weights'])}).",
            "",
        ]
        return out
    found = reached.iloc[0]
    out += _sparsest_found(found, reached, searched, target)
    out += _gap(found, best, target, init)
    if not best.empty or not searched.empty:
        from analysis import plots

        plots.search_gap(best, frontier(searched), target, os.path.join(folder, "search_gap.png"))
        out += [Figure("search_gap.png", "the search's frontier over the algorithms' curves"), ""]
    out += _drawings(found, best, target, folder, sweep_dir)
    return out


def _init(frame: pd.DataFrame) -> str:
    return str(frame["init"].fillna("default").iloc[0]) if "init" in frame else "default"


def _phase1(phase1: pd.DataFrame, choice: dict, target: float) -> list[Block]:
    if phase1.empty:
        return []
    frame = phase1.assign(structure=_structure(phase1))
    d_in, d_out = 2, 1
    grouped = frame.groupby("structure", sort=False)
    rows = pd.DataFrame(
        {
            "runs": grouped.size(),
            "best accuracy": grouped["value"].max(),
            "dense weights": grouped["nnz_weights"].max().astype(int),
        }
    ).reset_index()
    first = frame.drop_duplicates("structure").set_index("structure")
    rows["dense weights + biases"] = [
        search.params(tuple(int(first.loc[s, f"active_d{i}"]) for i in (1, 2, 3)), d_in, d_out)
        for s in rows["structure"]
    ]
    hit = rows[rows["best accuracy"] >= target].sort_values(
        ["dense weights + biases", "best accuracy"], ascending=[True, False], kind="stable"
    )
    structures = frame["structure"].nunique()
    out = [
        f"**Phase 1** (every structure dense inside the width-16 model, masked to its top-left block): "
        f"{structures} structures, {len(frame)} completed runs; {len(hit)} reached {target:.1%}.",
        "",
    ]
    if choice.get("structure"):
        chosen = "(" + ", ".join(map(str, choice["structure"])) + ")"
        out += [
            f"Phase 2 searched inside {chosen}: {choice['params']} dense weights + biases, best accuracy "
            f"{choice['accuracy']:.4f} (the fewest parameters reaching the target; sweep/search.py gives the rule).",
            "",
        ]
    elif "structure" in choice:
        out += [f"No structure reached {target:.1%} in phase 1, so phase 2 did not run.", ""]
    if not hit.empty:
        hit = hit.head(8).assign(**{"best accuracy": hit["best accuracy"].head(8).map("{:.4f}".format)})
        out += ["The smallest structures that reached it:", "", Table(hit, False), ""]
    return out


def _sparsest_found(found: pd.Series, reached: pd.DataFrame, searched: pd.DataFrame, target: float) -> list[Block]:
    layers = [f"{int(found[f'w{i}_nnz'])}" for i in (1, 2, 3) if f"w{i}_nnz" in found and pd.notna(found[f"w{i}_nnz"])]
    detail = f", hidden layers {' + '.join(layers)} nonzeros and the dense classifier" if layers else ""
    per_nnz = reached.groupby("nnz_weights").size()
    counts = ", ".join(f"{int(n)}: {c}" for n, c in per_nnz.head(6).items())
    return [
        f"**The sparsest network the search found at {target:.1%}**: Weight NNZ **{int(found['nnz_weights'])}**, "
        f"Model NNZ **{int(found['nnz_model'])}**, accuracy {found['value']:.4f}, structure "
        f"{_structure(found.to_frame().T).iloc[0]}{detail} (lr {found.get('lr')}, {found.get('lr_schedule')} "
        f"schedule; trial `{found['trial_id']}`).",
        "",
        f"Searched networks reaching {target:.1%}: {len(reached)} of {len(searched)} completed runs; by Weight NNZ, "
        f"the sparsest levels: {counts}.",
        "",
    ]


def _gap(found: pd.Series, best: pd.DataFrame, target: float, init: str) -> list[Block]:
    """One table: the search's sparsest, then each algorithm's at each width (same init, same target)."""
    n_search, m_search = int(found["nnz_weights"]), int(found["nnz_model"])
    width = max(int(found[f"active_d{i}"]) for i in (1, 2, 3))
    rows = [["combinatorial search", f"structure {_structure(found.to_frame().T).iloc[0]}", n_search, m_search,
             f"{found['value']:.4f}", "—"]]  # fmt: skip
    if best.empty:
        return _gap_table(rows, target, init, width)
    hit = sparsest.smallest(best, target)
    for (model, method), part in best.groupby(["model", "method"], sort=True):
        if (model, method) in hit.index:
            r = hit.loc[(model, method)]
            n = int(r["nnz_weights"])
            rows.append(
                [method, model, n, int(r["nnz_model"]), f"{r['value']:.4f}", f"+{n - n_search} ({n / n_search:.2f}x)"]
            )
        else:
            top = part.sort_values("value", ascending=False).iloc[0]
            rows.append(
                [method, model, "—", "—", f"best {top['value']:.4f} (at {int(top['nnz_weights'])})", "never reached"]
            )
    return _gap_table(rows, target, init, width)


def _gap_table(rows: list, target: float, init: str, width: int) -> list[Block]:
    frame = pd.DataFrame(rows, columns=["", "model", "Weight NNZ", "Model NNZ", "accuracy", "gap in Weight NNZ"])
    return [
        f"### The gap at {target:.1%}: fewest nonzero weights reaching it ({init} init)",
        "",
        f"The search's optimal width is {width} (the widest layer of its structure). An algorithm's entry is its "
        "run with the fewest measured nonzero weights among the best runs per target (best over hyper-parameters "
        "and seeds) that reached the target; the gap is its Weight NNZ above the search's.",
        "",
        Table(frame, False),
        "",
    ]


def _drawings(found: pd.Series, best: pd.DataFrame, target: float, folder: str, sweep_dir: str) -> list[Block]:
    """The sparsest searched network, and the sparsest network of the best algorithm (the fewest Weight NNZ at
    the target; if none reached it, the most accurate run) beside it, from the masks in the `layers` table."""
    rival = None
    if not best.empty:
        hit = best[best["value"] >= target]
        pool = hit.sort_values(["nnz_weights", "value"], ascending=[True, False], kind="stable") if not hit.empty else (
            best.sort_values(["value", "nnz_weights"], ascending=[False, True], kind="stable")
        )  # fmt: skip
        rival = pool.iloc[0]
    ids = [found["trial_id"]] + ([rival["trial_id"]] if rival is not None else [])
    layers = to_frame(read_arrow(sweep_dir, "layers", ["trial_id", "layer", "shape", "mask"], {"trial_id": ids}))
    drawings = []
    for trial, title in [
        (found, f"search: Weight NNZ {int(found['nnz_weights'])}, accuracy {found['value']:.4f}"),
        *(
            [(rival, f"{rival['method']} ({rival['model']}): Weight NNZ {int(rival['nnz_weights'])}, "
              f"accuracy {rival['value']:.4f}")]
            if rival is not None else []
        ),
    ]:  # fmt: skip
        part = layers[layers["trial_id"] == trial["trial_id"]] if not layers.empty else layers
        masks = _masks(part)
        if masks is None:
            continue
        drawings.append({"title": title, "masks": masks, "effective": effective(masks)})
    if not drawings:
        return []
    from analysis import plots

    plots.networks(drawings, os.path.join(folder, "sparsest_networks.png"))
    return [
        Figure("sparsest_networks.png", "the sparsest networks"),
        "",
        "Left: the search's sparsest network; right: the sparsest network of the best pruning algorithm at the "
        "same target. Every surviving weight is a line; red dashed lines are ineffective weights (on no "
        "input-to-output path), hollow neurons have no incoming weight (a live bias makes them a constant).",
        "",
    ]


def _masks(rows: pd.DataFrame) -> list[np.ndarray] | None:
    """A trial's layer masks from its `layers` rows (None if a layer's pattern was not kept)."""
    if rows.empty or rows["mask"].isna().any():
        return None
    rows = rows.drop_duplicates("layer")
    return [bits.from_hex(m, tuple(int(x) for x in s.split("x"))) for m, s in zip(rows["mask"], rows["shape"])]


def effective(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Per layer, which nonzero weights lie on some input-to-output path (trainables/training/structure.py's
    definition, on numpy): from a neuron reachable from an input to one that reaches the output."""
    reach = [np.ones(masks[0].shape[1], dtype=bool)]
    for m in masks:
        reach.append((m.astype(int) @ reach[-1].astype(int)) > 0)
    back = [np.ones(masks[-1].shape[0], dtype=bool)]
    for m in reversed(masks):
        back.insert(0, (m.T.astype(int) @ back[0].astype(int)) > 0)
    return [m & back[i + 1][:, None] & reach[i][None, :] for i, m in enumerate(masks)]
