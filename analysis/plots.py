"""Plots written as PNG (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from analysis.tables import metric_label  # noqa: E402

# Reproducible SVG (element ids from this salt, not random) and text drawn as paths: a page needs no font.
matplotlib.rcParams["svg.hashsalt"] = "sparsity-sweeps"
matplotlib.rcParams["svg.fonttype"] = "path"


def metric_vs_sparsity(trials: pd.DataFrame, best: pd.DataFrame, path: str, points: pd.DataFrame | None = None) -> str:
    """Metric of the best configuration per cell against sparsity, one line per method, error bars over seeds;
    `points` (rows of methods that learn their sparsity) are drawn as well, at their achieved sparsity (one per
    configuration, mean over seeds, when there are more than MAX_POINTS)."""
    keep = trials[trials["config_hash"].isin(best["config_hash"]) & (trials["status"] == "completed")]
    metric = best["metric"].iloc[0]
    sparse, dense = keep[keep["method"] != "dense"], keep[keep["method"] == "dense"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(
        data=sparse,
        x="target_sparsity",
        y="value",
        hue="method",
        style="method",
        markers=True,
        dashes=False,
        errorbar="sd",
        err_style="bars",
        ax=ax,
    )
    if points is not None and not points.empty:
        points = _one_per_configuration(points) if len(points) > MAX_POINTS else points
        sns.scatterplot(data=points, x="sparsity", y="value", hue="method", marker=".", alpha=0.5, legend=False, ax=ax)
    if not dense.empty:
        ax.axhline(dense["value"].mean(), color="grey", linestyle="--", label="dense")
    ax.set_xlabel("sparsity (fraction of prunable weights that are zero; points: learned, at achieved)")
    ax.set_ylabel(f"{metric_label(metric)}\nbest config per point; mean ± sd over seeds")
    ax.set_title(f"{best['task'].iloc[0]}: {metric} vs sparsity")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


MAX_POINTS = 5_000  # more learned-sparsity rows than this are drawn one point per configuration


def _one_per_configuration(points: pd.DataFrame) -> pd.DataFrame:
    """Mean achieved sparsity and metric over each configuration's seeds: a large sweep's cloud keeps its shape
    with a fifth of the points (or fewer), and matplotlib draws it in a fraction of the time."""
    keys = ["method", "config_hash"]
    return points.groupby(keys, as_index=False, sort=False, dropna=False)[["sparsity", "value"]].mean()


def layer_heatmap(layers: pd.DataFrame, best: pd.DataFrame, level: float, path: str) -> pd.DataFrame | None:
    """Per-layer sparsity (layer x method) of each method's best configuration at `level`, mean over seeds."""
    chosen = best[(best["target_sparsity"] == level) & (best["method"] != "dense")][["method", "config_hash"]]
    rows = layers.merge(chosen, on=["method", "config_hash"]) if not layers.empty else layers
    if rows.empty:
        return None
    order = list(dict.fromkeys(layers["layer"]))  # model order, as written
    grid = rows.pivot_table(index="layer", columns="method", values="sparsity", aggfunc="mean").reindex(order)
    grid = grid.dropna(how="all")
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * grid.shape[1], 1.2 + 0.35 * grid.shape[0]))
    label = "sparsity (fraction of weights zero)"
    sns.heatmap(grid, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", cbar_kws={"label": label}, ax=ax)
    ax.set_title(f"per-layer sparsity at {level:g} (best config per method)")
    _save(fig, path, svg=False)  # a grid of colours: a PNG is smaller and as sharp
    return grid


def lth_bars(rows: pd.DataFrame, best: pd.DataFrame, path: str) -> str:
    """The lottery-ticket study as grouped bars: per sparsity, the pruned model and each variant (best
    configuration; mean ± sd over seeds), one panel per (child stage, parent method)."""
    keys = ["stage", "parent_method", "target_sparsity", "variant", "config_hash"]
    chosen = rows.merge(best[keys], on=keys)
    panels = list(chosen.groupby(["stage", "parent_method"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(9.5 * len(panels), 4.5), squeeze=False)
    order = list(dict.fromkeys(best["variant"]))
    for ax, ((stage, method), data) in zip(axes[0], panels):
        data = data.assign(sparsity=data["target_sparsity"].map(lambda s: f"{s:g}"))
        sns.barplot(data=data, x="sparsity", y="value", hue="variant", hue_order=order, errorbar="sd", ax=ax)
        ax.set_title(f"{stage}: masks from {method}")
        ax.set_xlabel("sparsity of the mask (fraction of prunable weights that are zero)")
        ax.set_ylabel(f"{metric_label(best['metric'].iloc[0])}\nbest config; mean ± sd over seeds")
        ax.grid(axis="y", alpha=0.3)
        low = data["value"].min()
        ax.set_ylim(bottom=max(0.0, low - 0.1 * abs(low)))
        ax.legend(title="variant", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def accuracy_vs_nnz(best: pd.DataFrame, path: str) -> str:
    """Accuracy of the best run per target against its measured Weight NNZ, one line per method, one panel per
    model (width and initialisation); the study's 95 % and 99.5 % targets as dashed lines."""
    models = sorted(best["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models):
        part = best[best["model"] == model].sort_values("nnz_weights")
        sns.lineplot(
            data=part,
            x="nnz_weights",
            y="value",
            hue="method",
            style="method",
            markers=True,
            dashes=False,
            errorbar=None,
            ax=ax,
        )
        for level in (0.95, 0.995):
            ax.axhline(level, color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(model)
        ax.set_xlabel("Weight NNZ (nonzero weights, measured)")
        metric = part["metric"].iloc[0] if "metric" in part else "accuracy"
        ax.set_ylabel(f"{metric_label(metric)}\nbest run per target")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def search_gap(best: pd.DataFrame, frontier: pd.DataFrame, target: float, path: str) -> str:
    """The study's comparison: per pruned model (one panel each), every algorithm's best accuracy per target at
    its measured Weight NNZ, over the combinatorial search's frontier (the best accuracy of any searched network
    with at most that many nonzero weights)."""
    models = sorted(best["model"].unique()) if not best.empty else ["(no pruning runs)"]
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        part = best[best["model"] == model].sort_values("nnz_weights") if not best.empty else best
        if not part.empty:
            sns.lineplot(
                data=part, x="nnz_weights", y="value", hue="method", style="method", markers=True, dashes=False,
                errorbar=None, ax=ax, alpha=0.8,
            )  # fmt: skip
        ax.step(
            frontier["nnz_weights"], frontier["frontier"], where="post", color="black", linewidth=2.2,
            label="combinatorial search (frontier)",
        )  # fmt: skip
        ax.scatter(frontier["nnz_weights"], frontier["value"], color="black", s=14, zorder=5)
        ax.axhline(target, color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(f"{model} vs the search")
        ax.set_xlabel("Weight NNZ (nonzero weights, measured)")
        ax.set_ylabel("accuracy (fraction of the 49,982 points)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def networks(drawings: list[dict], path: str) -> str:
    """Draw chains of linear layers side by side: neurons as dots (inputs left, output right), every surviving
    weight as a line. A drawing is {"title", "masks": [(out, in) bool arrays], "effective": same shapes};
    ineffective weights (on no input-to-output path) are red and dashed, neurons with no incoming weight hollow."""
    fig, axes = plt.subplots(1, len(drawings), figsize=(5.5 * len(drawings), 4.6), squeeze=False)
    for ax, drawing in zip(axes[0], drawings):
        masks, effective = drawing["masks"], drawing["effective"]
        sizes = [masks[0].shape[1]] + [m.shape[0] for m in masks]
        shown = []  # per layer, the neurons drawn: inputs and outputs all, hidden ones with any weight
        for layer, n in enumerate(sizes):
            if layer in (0, len(sizes) - 1):
                shown.append(list(range(n)))
                continue
            live = masks[layer - 1].any(axis=1) | masks[layer].any(axis=0)
            shown.append([i for i in range(n) if live[i]])
        where = {}
        for layer, neurons in enumerate(shown):
            for rank, i in enumerate(neurons):
                where[layer, i] = (layer, (rank - (len(neurons) - 1) / 2))
        for layer, (mask, good) in enumerate(zip(masks, effective)):
            for j, i in zip(*mask.nonzero()):
                (x0, y0), (x1, y1) = where[layer, i], where[layer + 1, j]
                ok = bool(good[j, i])
                ax.plot(
                    [x0, x1], [y0, y1], color="#333333" if ok else "#d62728", linestyle="-" if ok else "--",
                    linewidth=1.3 if ok else 1.1, zorder=1,
                )  # fmt: skip
        for (layer, i), (x, y) in where.items():
            fed = layer == 0 or masks[layer - 1][i].any()
            ax.scatter([x], [y], s=110, zorder=2, facecolor="#1f77b4" if fed else "white", edgecolor="#1f77b4")
        ax.set_title(drawing["title"], fontsize=9)
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels(["input"] + [f"hidden {k}" for k in range(1, len(sizes) - 1)] + ["output"], fontsize=8)
        ax.set_yticks([])
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    return _save(fig, path)


def overparameterisation(frame: pd.DataFrame, path: str) -> str:
    """Fewest nonzero weights reaching each accuracy target against the model's width (log scale), one line per
    algorithm (and initialisation), one panel per target."""
    targets = list(dict.fromkeys(frame["target"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(6.5 * len(targets), 4.5), squeeze=False)
    several = frame["init"].nunique() > 1
    for ax, target in zip(axes[0], targets):
        part = frame[frame["target"] == target].sort_values("width")
        part = part.assign(line=part["method"] + (", " + part["init"] if several else ""))
        sns.lineplot(
            data=part, x="width", y="nnz_weights", hue="line", style="line", markers=True, dashes=False,
            errorbar=None, ax=ax,
        )  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_title(f"reaching {target} accuracy")
        ax.set_xlabel("model width (hidden neurons per layer)")
        ax.set_ylabel("fewest Weight NNZ (nonzero weights)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def _save(fig, path: str, svg: bool = True) -> str:
    """Write the PNG at `path` (the Markdown report links it) and, for line plots, an SVG beside it (the HTML page
    inlines that: sharp at any zoom, and small)."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    if svg:
        fig.savefig(os.path.splitext(path)[0] + ".svg", metadata={"Date": None})
    plt.close(fig)
    return path
