"""Models defined in the project (torchvision is not a dependency)."""

from __future__ import annotations

from torch import nn


class MLP(nn.Sequential):
    """Zhang & Papyan's four-layer MLP: d_in -> w -> w -> w -> d_out, ReLU, biases, PyTorch's default init."""

    def __init__(self, d_in: int = 2, width: int = 16, d_out: int = 1, hidden_layers: int = 3):
        layers: list[nn.Module] = []
        for i in range(hidden_layers):
            layers += [nn.Linear(d_in if i == 0 else width, width), nn.ReLU()]
        layers.append(nn.Linear(width, d_out))
        super().__init__(*layers)
