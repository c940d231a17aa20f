"""Shared machinery of the methods that learn their sparsity (variational dropout, L0): forwards computed from
an effective weight, and the regulariser's weight ramp."""

from __future__ import annotations

import types

import torch
from torch import nn
from torch.nn import functional as F

from methods.base import PRUNABLE_TYPES, Sparsifier


def forward_with(module: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: bool = True) -> torch.Tensor:
    """The module's own forward, with `weight` in place of its weight (and optionally without its bias)."""
    b = module.bias if bias and getattr(module, "bias", None) is not None else None
    if isinstance(module, nn.Linear):
        return F.linear(x, weight, b)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return module._conv_forward(x, weight, b)
    if isinstance(module, nn.Embedding):
        return F.embedding(
            x, weight, module.padding_idx, module.max_norm, module.norm_type, module.scale_grad_by_freq, module.sparse
        )
    raise TypeError(f"cannot reparameterise {type(module).__name__}")


class LearnedSparsifier(Sparsifier):
    """Base of VD and L0: every prunable module computes its forward from `effective_weight(name, module)`.
    Its subclasses are declared with a `RampConfig` (methods/config.py), learning their sparsity."""

    def prepare(self, model: nn.Module) -> None:
        super().prepare(model)
        self.ema, self.ema_step, self._own = 0.0, 0, []
        names = {id(p): n for n, p in self.params.items()}
        for module in model.modules():
            if isinstance(module, PRUNABLE_TYPES) and id(module.weight) in names:
                self.reparameterise(names[id(module.weight)], module)

    def reparameterise(self, name: str, module: nn.Module) -> None:
        """Add the method's parameters (first time a tensor is seen) and replace the module's forward."""
        sparsifier = self

        def forward(self_module, x):
            return sparsifier.forward(name, self_module, x)

        module.forward = types.MethodType(forward, module)

    def forward(self, name: str, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def ramp(self, step: int) -> float:
        cfg = self.config
        progress = max(step - cfg.ramp_start, 0) / cfg.ramp_length
        if cfg.ramp == "linear":
            return cfg.weight * min(progress, 1.0)
        while self.ema_step < step:  # the 0.9 moving average advances once per step, whatever calls it
            self.ema_step += 1
            p = max(self.ema_step - cfg.ramp_start, 0) / cfg.ramp_length
            self.ema = 0.1 * cfg.weight * min(1 - (1 - min(p, 1.0)) ** 3, 1.0) + 0.9 * self.ema
        return self.ema

    def after_step(self, step: int) -> None:
        pass  # nothing is zeroed in training: the forward decides

    def apply_masks(self) -> None:
        pass

    def state_dict(self):
        return {"ema": self.ema, "ema_step": self.ema_step}

    def load_state_dict(self, state) -> None:
        self.ema, self.ema_step = float(state["ema"]), int(state["ema_step"])

    def _new_param(self, module: nn.Module, attr: str, value: torch.Tensor) -> nn.Parameter:
        param = nn.Parameter(value.to(module.weight.device))
        module.register_parameter(attr, param)
        self._own.append(param)
        return param

    def own_parameters(self) -> list[nn.Parameter]:
        return list(self._own)
