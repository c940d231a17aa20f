"""How a global target is spread over the prunable tensors, independent of any method.

An allocation maps (target, tensors) to a per-tensor sparsity. Fixed per-layer sparsities (a dense first
layer, a last layer at 0.8, ...) are taken out first; the allocation spreads the target over the rest.
`global` is the exception: it returns None for the tensors it covers, meaning "rank all their scores together".
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping

import torch

ALLOCATIONS = ("uniform", "global", "erk")


def uniform(target: float, shapes: Mapping[str, torch.Size]) -> dict[str, float]:
    """Every tensor gets the target (the study's default: one threshold per tensor)."""
    return {name: target for name in shapes}


def erk_densities(target: float, shapes: Mapping[str, torch.Size], power: float = 1.0) -> dict[str, float]:
    """Erdős–Rényi-Kernel (RigL): density_l = eps * (sum(shape_l) / prod(shape_l))**power, with layers that
    would exceed density 1 made dense and the rest re-scaled, so the overall density is exactly 1 - target."""
    numel = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: (sum(s) / math.prod(s)) ** power for n, s in shapes.items()}
    dense: set[str] = set()
    while True:
        budget = (1 - target) * sum(numel.values()) - sum(numel[n] for n in dense)
        scale = budget / sum(raw[n] * numel[n] for n in shapes if n not in dense)
        over = {n for n in shapes if n not in dense and raw[n] * scale > 1}
        if not over:
            return {n: 1.0 if n in dense else raw[n] * scale for n in shapes}
        dense |= over


def erk(target: float, shapes: Mapping[str, torch.Size]) -> dict[str, float]:
    return {n: 1.0 - d for n, d in erk_densities(target, shapes).items()}


def fixed_layers(names: list[str], first_layer_dense: bool, overrides: Mapping[str, float]) -> dict[str, float]:
    """Per-tensor sparsities fixed by the config: overrides by glob pattern on the tensor name (first match
    wins, in the order given), and a dense first prunable tensor."""
    fixed = {}
    for name in names:
        for pattern, sparsity in overrides.items():
            if fnmatch.fnmatchcase(name, pattern):
                fixed[name] = sparsity
                break
    if first_layer_dense and names:
        fixed[names[0]] = 0.0
    return fixed


def allocate(
    kind: str, target: float, shapes: Mapping[str, torch.Size], fixed: Mapping[str, float]
) -> dict[str, float | None]:
    """Per-tensor sparsity; None marks tensors ranked together by a global threshold."""
    rest = {n: s for n, s in shapes.items() if n not in fixed}
    if kind == "uniform":
        spread: dict[str, float | None] = dict(uniform(target, rest))
    elif kind == "erk":
        spread = dict(erk(target, rest)) if rest else {}
    elif kind == "global":
        spread = {n: None for n in rest}
    else:
        raise ValueError(f"unknown allocation {kind!r}; choose one of {', '.join(ALLOCATIONS)}")
    return {n: fixed[n] if n in fixed else spread[n] for n in shapes}
