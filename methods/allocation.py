"""How a global target is spread over the prunable tensors, independent of any method."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def uniform(target: float, params: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Every prunable tensor gets the same target (the study's default: one threshold per tensor)."""
    return {name: target for name in params}
