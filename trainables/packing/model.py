"""Stacked layers and an optimizer with a leading member axis: member k's numbers are those it would have alone."""

from __future__ import annotations

import torch
from torch import nn


class StackedLinear(nn.Module):
    """K independent linear layers: weight (K, out, in), bias (K, out), input (K, B, in) -> (K, B, out).

    Member k's weight is laid out as nn.Linear's, so its mask and its name ("0.weight") match an unpacked trial's.
    """

    stacked = True  # a prunable layer with a member axis (methods.base.is_prunable)

    def __init__(self, members: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, d_out, d_in))
        self.bias = nn.Parameter(torch.empty(members, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    @torch.no_grad()
    def load_members(self, layers: list[nn.Linear]) -> None:
        self.weight.copy_(torch.stack([layer.weight for layer in layers]))
        self.bias.copy_(torch.stack([layer.bias for layer in layers]))


SMALL = 9  # in x out of the largest layer up to which members-last multiply-sums beat bmm (bench/packing.py)


class StackedSequential(nn.Sequential):
    """A stack of StackedLinear and parameter-free layers. When every layer is tiny (in·out <= SMALL: the width-3
    MLP), it computes with the members on the last axis, as broadcast multiply-sums over long contiguous rows:
    there a batched matmul of 3x3 matrices costs more than the arithmetic (measured: 11.4 against 6.7 µs per
    member-step for forward and backward at K = 1,024). The same function, up to float rounding."""

    def __init__(self, *layers: nn.Module):
        super().__init__(*layers)
        linear = [m for m in layers if isinstance(m, StackedLinear)]
        self.members_last = all(m.weight.shape[1] * m.weight.shape[2] <= SMALL for m in linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.members_last:
            return super().forward(x)
        h = x.permute(1, 2, 0).contiguous()  # (B, in, K)
        for layer in self:
            if isinstance(layer, StackedLinear):
                weight = layer.weight.permute(1, 2, 0).contiguous()  # (out, in, K)
                h = (h.unsqueeze(1) * weight.unsqueeze(0)).sum(2) + layer.bias.t()
            else:
                h = layer(h)
        return h.permute(2, 0, 1)  # (K, B, out)


def stack_sequential(members: list[nn.Sequential]) -> nn.Sequential:
    """One stacked model from K models of the same nn.Sequential shape (Linear and parameter-free layers), with
    each member's own weights; parameter names are the members' ("0.weight", "2.bias", ...)."""
    layers: list[nn.Module] = []
    for i, layer in enumerate(members[0]):
        if isinstance(layer, nn.Linear):
            stacked = StackedLinear(len(members), layer.in_features, layer.out_features)
            stacked.load_members([m[i] for m in members])
            layers.append(stacked)
        elif isinstance(layer, nn.ReLU):
            layers.append(nn.ReLU(inplace=True))  # same numbers; saves a (K, B, width) buffer per layer and step
        elif not list(layer.parameters()):
            layers.append(layer)
        else:
            raise ValueError(f"cannot stack layer {i} ({type(layer).__name__})")
    stacked = StackedSequential(*layers).to(next(members[0].parameters()).device)
    stacked.bias_follows_out_degree = getattr(members[0], "bias_follows_out_degree", False)
    return stacked


def forward_members(model: nn.Sequential, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """The outputs of members start..stop-1 of a stacked nn.Sequential for their inputs x (stop - start, B, in)."""
    for layer in model:
        if isinstance(layer, StackedLinear):
            x = torch.baddbmm(layer.bias[start:stop].unsqueeze(1), x, layer.weight[start:stop].transpose(1, 2))
        else:
            x = layer(x)
    return x


class StackedSGD:
    """torch.optim.SGD (momentum, L2 weight decay, no dampening or Nesterov) over stacked parameters, with a
    learning rate, momentum and weight decay per member. Each update is the single-tensor SGD's arithmetic:
    d = g + wd·p; buf = d on the first step, else momentum·buf + d; p -= lr·buf."""

    def __init__(self, params: list[nn.Parameter], momentum: torch.Tensor, weight_decay: torch.Tensor):
        self.params = list(params)
        self.momentum, self.weight_decay = momentum, weight_decay
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    @staticmethod
    def _per_member(values: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
        return values.view(-1, *([1] * (param.dim() - 1)))

    @torch.no_grad()
    def step(self, lr: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """One update with per-member rates `lr` (K,); members outside `active` (K,) bool stay as they are: their
        weights and momentum are held (a diverged member, or one whose method skips this step, as RigL's)."""
        for i, p in enumerate(self.params):
            keep = None if active is None else self._per_member(active, p)
            # a diverged member's numbers may be inf or NaN: they must reach neither its state nor anyone's
            grad = p.grad if keep is None else torch.where(keep, p.grad, 0.0)
            d = torch.addcmul(grad, self._per_member(self.weight_decay, p), p)
            old = self.buffers[i]
            if old is None:
                self.buffers[i] = d.clone()
            elif keep is None:
                old.mul_(self._per_member(self.momentum, p)).add_(d)
            else:
                self.buffers[i] = old * self._per_member(self.momentum, p) + d
            if keep is not None:
                self.buffers[i] = torch.where(keep, self.buffers[i], 0.0 if old is None else old)
                # the same kernel as below, so an active member's update is bit-identical to a pack without the others
                p.copy_(torch.where(keep, p.addcmul(self.buffers[i], self._per_member(-lr, p)), p))
            else:
                p.addcmul_(self.buffers[i], self._per_member(-lr, p))
            p.grad = None

    def skip(self) -> None:
        """No update this step (every member's method skips it): the gradients are dropped."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def mask_momentum(self, masked: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Zero the momentum of every pruned weight, (parameter, mask) pairs (after RigL's mask updates)."""
        index = {id(p): i for i, p in enumerate(self.params)}
        for param, mask in masked:
            buffer = self.buffers[index[id(param)]]
            if buffer is not None:
                buffer.mul_(mask)

    def reset(self) -> None:
        """A fresh optimizer (IMP's rounds): every member's momentum dropped."""
        self.buffers = [None] * len(self.params)

    def state_dict(self) -> dict:
        return {"buffers": [None if b is None else b.clone() for b in self.buffers]}

    def load_state_dict(self, state: dict) -> None:
        self.buffers = [None if b is None else b.to(p.device) for b, p in zip(state["buffers"], self.params)]
