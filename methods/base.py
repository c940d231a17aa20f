"""The sparsifier contract: the hooks a training loop calls, and nothing else.

A training loop does, for every step:

    loss = task_loss + sparsifier.penalty(step)
    loss.backward(); optimizer.step()
    sparsifier.after_step(step)

and reads `masks()`, `sparsity()` and `layer_sparsity()` for evaluation and results. It never learns which
method it runs. Sparsity counts prunable weight tensors only (conv, linear and embedding weights; biases and
norms are never pruned), globally over all of them and per tensor.

Packing (many small trials as one computation): a packable method (`packable = True`) can be built for K members
with `for_members([(config, target, seed), ...])` and prepared on a stacked model whose prunable weights carry a
leading member axis of size K (modules marked `stacked = True`). Every selection is then made within one member,
each with its own config, target and seed; that axis is all a method knows of packing. Its masks have the
weights' stacked shapes. A method that cannot run packed keeps `packable = False`: its trials run one at a time.

Three more hooks serve methods that prune at initialisation, regrow, or train in rounds; each does nothing by
default, so the methods that do not need them never see them:

    sparsifier.prune_at_init(model, context)   # a fresh start, before step 1 (SNIP, GraSP, SynFlow, ...)
    for round in 1..sparsifier.rounds:         # config.training_rounds(); 1 but for IMP with rewinding
        for each step of the task's training:
            loss.backward()
            if sparsifier.before_update(step):  # False (or a member's False): that optimizer step is skipped
                optimizer.step()
            sparsifier.after_step(step)
        if round < rounds:
            sparsifier.end_round(round, step)   # e.g. prune; then the loop rewinds the weights to step 0's (under
                                                # the new masks), starts a fresh optimizer and the LR schedule anew

A model may also declare that its biases follow the masks (`bias_follows_out_degree = True`, the Sparsest-Models
MLP): a hidden neuron's bias is then held at zero while the neuron has no outgoing weight left, as the study's
models do; the output layer's bias is never masked.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from methods.config import MethodConfig, option  # noqa: F401 (option: re-exported)
from methods.registry import Declaration

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


def is_prunable(module: nn.Module) -> bool:
    """Conv, linear and embedding layers, and the stacked layers of a packed model (`stacked = True`)."""
    return isinstance(module, PRUNABLE_TYPES) or getattr(module, "stacked", False)


def prunable_parameters(model: nn.Module) -> OrderedDict[str, nn.Parameter]:
    """The weights a sparsifier may prune, in module order, keyed by parameter name.

    A weight shared by several modules (e.g. a tied embedding and softmax) is listed once, under its first name.
    """
    params: OrderedDict[str, nn.Parameter] = OrderedDict()
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        if is_prunable(module) and id(module.weight) not in seen:
            seen.add(id(module.weight))
            params[f"{module_name}.weight" if module_name else "weight"] = module.weight
    if not params:
        raise ValueError("model has no prunable weights (conv, linear or embedding)")
    return params


@dataclasses.dataclass(frozen=True)
class InitContext:
    """What pruning at initialisation may use (`Sparsifier.prune_at_init`): the task's own batches and loss.

    Packed, `batch(i)` has one row per member (member k's own batch) and `loss` returns one value per member,
    whose sum back-propagates each member's own gradient; the lists hold one value per member."""

    batch: Callable[[int], Any]  # the i-th training batch (i >= 1): the ones training starts with
    loss: Callable[[nn.Module, Any], torch.Tensor]  # the task's loss: a scalar, or (K,) for a pack
    lr: list[float]  # each member's learning rate at step 1 (ProsPr's inner steps take it)
    momentum: list[float]
    weight_decay: list[float]
    stored_init: bool = False  # the initial weights were loaded from a stored initialisation, not drawn


class Sparsifier:
    """Base class: a method overrides the hooks it needs.

    `target` is the requested fraction of zero prunable weights (0 <= target < 1); methods that learn their
    sparsity (`targets_sparsity = False`) may ignore it. `seed` makes every random choice reproducible.
    """

    name: ClassVar[str]
    # set by `methods.register` from the method's declaration (methods/config.py; see registry.Declaration)
    declaration: ClassVar[Declaration]
    Config: ClassVar[type[MethodConfig]]
    targets_sparsity: ClassVar[bool]
    learns_sparsity: ClassVar[bool]
    variant_columns: ClassVar[dict[str, str]]
    packable: ClassVar[bool]

    def __init__(self, config: MethodConfig, target: float | None = 0.0, seed: int = 0):
        target = 0.0 if target is None and not self.targets_sparsity else target
        if target is None or not 0.0 <= target < 1.0:
            raise ValueError(f"target sparsity must be in [0, 1), got {target}")
        self.config = config
        self.target = target
        self.seed = seed
        self.members: list[tuple[MethodConfig, float, int]] = [(config, target, seed)]
        self.stacked = False  # True: every prunable tensor has a leading axis of len(self.members)
        self.params: OrderedDict[str, nn.Parameter] = OrderedDict()
        self._masks: dict[str, torch.Tensor] = {}

    @classmethod
    def for_members(cls, members: list[tuple[MethodConfig, float | None, int]]) -> Sparsifier:
        """One sparsifier for K members of a pack, each with its own (config, target, seed)."""
        if not cls.packable:
            raise ValueError(f"method {cls.name} cannot run packed")
        built = [cls(*m) for m in members]  # validates each member's target as an unpacked trial would
        self = built[0]
        self.members, self.stacked = [m.members[0] for m in built], True
        return self

    def member_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` (a weight, mask or score) as one row per member: shape (K, numel); K = 1 when not packed."""
        return tensor.reshape(len(self.members) if self.stacked else 1, -1)

    def member_shape(self, param: torch.Tensor) -> torch.Size:
        """The shape of one member's tensor."""
        return param.shape[1:] if self.stacked else param.shape

    # -- hooks -------------------------------------------------------------------------------------------
    def prepare(self, model: nn.Module) -> None:
        """Choose the prunable tensors and install all-ones masks."""
        self.params = prunable_parameters(model)
        if self.stacked and any(p.shape[0] != len(self.members) for p in self.params.values()):
            raise ValueError(f"a stacked model of {len(self.members)} members is needed for this packed sparsifier")
        self._masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in self.params.items()}
        self._bias_rules = _bias_followers(model, self.params)

    def set_masks(self, masks: dict[str, torch.Tensor]) -> None:
        """Start from these masks (after `prepare`), e.g. a parent trial's final masks in a dependent stage."""
        self.load_state_dict({**self.state_dict(), "masks": masks})

    def prune_at_init(self, model: nn.Module, context: InitContext) -> None:
        """A fresh start, after `prepare` and before step 1: choose masks from the initial network. It may
        re-initialise weights (the loop keeps the weights as they are after it as step 0's); the loop applies
        the masks after it. Not called on a resume (the checkpoint holds the masks)."""

    @property
    def rounds(self) -> int:
        """How many times the task's training runs (IMP with rewinding: 5); the loop restarts between rounds."""
        return self.config.training_rounds()

    def end_round(self, round: int, step: int) -> None:
        """After the last step of round `round` (1-based) of `rounds`, but the last: the loop then rewinds the
        weights to step 0's under the masks set here, starts a fresh optimizer and the task's LR schedule anew."""

    def before_update(self, step: int) -> bool | torch.Tensor:
        """Called after backward and before optimizer step `step`: whether to take it (True), skip it (False),
        or, packed, a (K,) bool tensor of the members that take it. Gradients are those of the masked weights,
        dense (a pruned weight's gradient is generally nonzero)."""
        return True

    def penalty(self, step: int) -> torch.Tensor:
        """Regulariser added to the loss; zero for methods without one."""
        device = next(iter(self.params.values())).device
        return torch.zeros((), device=device)

    def after_step(self, step: int) -> None:
        """Called after optimizer step number `step` (1-based). Keeps pruned weights at exactly zero."""
        self.apply_masks()

    # -- what evaluation and results see -----------------------------------------------------------------
    def masks(self) -> dict[str, torch.Tensor]:
        return dict(self._masks)

    def layer_sparsity(self) -> dict[str, float]:
        return {n: 1.0 - m.sum().item() / m.numel() for n, m in self.masks().items()}

    def sparsity(self) -> float:
        masks = self.masks()
        total = sum(m.numel() for m in masks.values())
        return 1.0 - sum(m.sum().item() for m in masks.values()) / total

    def own_parameters(self) -> list[nn.Parameter]:
        """Parameters the method added (VD's log σ², L0's log α): trained, but never weight-decayed."""
        return []

    def eval_variants(self) -> list[dict[str, Any]]:
        """Ways to evaluate one trained model (e.g. VD thresholds); each gets its own evaluation and trial rows."""
        return [{}]

    def use_variant(self, variant: dict[str, Any]) -> None:
        """Switch `masks()` and the eval-mode forward to one of `eval_variants()`."""

    # -- resume ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"masks": {n: m.clone() for n, m in self._masks.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = set(self._masks) ^ set(state["masks"])
        if missing:
            raise ValueError(f"sparsifier state does not match the model's prunable tensors: {sorted(missing)}")
        for name, mask in state["masks"].items():
            self._masks[name] = mask.to(device=self._masks[name].device, dtype=torch.bool)
        self.apply_masks()

    # -- helpers -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def apply_masks(self) -> None:
        for name, param in self.params.items():
            param.mul_(self._masks[name])
        for bias, follows in getattr(self, "_bias_rules", ()):
            bias.mul_(self._masks[follows].any(dim=-2))

    def bias_masks(self) -> dict[str, torch.Tensor]:
        """The masks the model's biases follow (bias_follows_out_degree), by the bias's prunable weight's name."""
        return {follows: self._masks[follows].any(dim=-2) for _, follows in getattr(self, "_bias_rules", ())}

    @torch.no_grad()
    def global_scores(self, scores: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores of every prunable tensor as one row per member, (K, total), in `self.params` order."""
        return torch.cat([self.member_rows(scores[n]) for n in self.params], dim=1)

    def split_rows(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """The inverse of `global_scores`: (K, total) back to one tensor per prunable weight, in its shape."""
        sizes = [self.member_shape(p).numel() for p in self.params.values()]
        return {n: part.reshape(self.params[n].shape) for n, part in zip(self.params, rows.split(sizes, dim=1))}

    def total_weights(self) -> int:
        """Prunable weights of one member."""
        return sum(self.member_shape(p).numel() for p in self.params.values())


def _bias_followers(model: nn.Module, params: OrderedDict[str, nn.Parameter]) -> list[tuple[nn.Parameter, str]]:
    """(bias, name of the next prunable weight) for each prunable layer but the last, when the model declares
    `bias_follows_out_degree`: a neuron's bias is kept while its column of the next layer's mask has a weight."""
    if not getattr(model, "bias_follows_out_degree", False):
        return []
    layers = [m for m in model.modules() if is_prunable(m)]
    names = list(params)
    if len(layers) != len(names):
        raise ValueError("bias_follows_out_degree needs one prunable weight per layer")
    return [(layer.bias, names[i + 1]) for i, layer in enumerate(layers[:-1]) if layer.bias is not None]
