"""Data sets. `cubist_spiral()` is deterministic and needs no download."""

from __future__ import annotations

import math

import torch

CUBIST_POINTS_PER_ARM = 50_000 // 2


def _cubist_vertices() -> tuple[torch.Tensor, torch.Tensor]:
    """17 vertices per arm: 2 turns of 8 straight segments at 45 degrees, arms 15 either side of r = 10*theta + pi."""
    theta = torch.linspace(math.pi, 5 * math.pi, 17, dtype=torch.float64) + 1.6 * (1 / 8) * 2 * math.pi
    direction = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    centre = (10 * theta + math.pi)[:, None] * direction
    outer, inner = centre + 15 * direction, centre - 15 * direction
    shift = torch.cat([outer, inner]).min(dim=0).values
    return outer - shift, inner - shift


def _segment_points(vertices: torch.Tensor) -> list[torch.Tensor]:
    """Points evenly spaced along each segment, endpoints included, in proportion to segment length."""
    lengths = (vertices[1:] - vertices[:-1]).norm(dim=1)
    counts = [int(length / lengths.sum() * CUBIST_POINTS_PER_ARM) for length in lengths.tolist()]
    segments = []
    for i, n in enumerate(counts):
        t = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]
        segments.append(t * vertices[i] + (1 - t) * vertices[i + 1])
    return segments


def cubist_segments() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The raw (unstandardised) points of each segment of each arm: (class 0 segments, class 1 segments)."""
    outer, inner = _cubist_vertices()
    return _segment_points(outer), _segment_points(inner)


def cubist_spiral() -> tuple[torch.Tensor, torch.Tensor]:
    """The Cubist Spiral of Zhang & Papyan (2024): x of shape (49982, 2) standardised, y of shape (49982, 1).

    Class 0 is the outer arm, class 1 the inner one; y is float for BCE-with-logits. There is no split:
    the study evaluates on the training points.
    """
    outer, inner = cubist_segments()
    arm0, arm1 = torch.cat(outer), torch.cat(inner)
    x = torch.cat([arm0, arm1]).float()
    x = (x - x.mean(dim=0)) / x.std(dim=0)  # unbiased std, as torch.std
    y = torch.cat([torch.zeros(len(arm0), 1), torch.ones(len(arm1), 1)])
    return x, y
