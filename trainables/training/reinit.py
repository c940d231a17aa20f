"""How a trial of a dependent stage starts (the State of Sparsity §4): its parent's final masks, fixed through
training, and weights that are

- fresh (scratch-e; scratch-b trains `time_multiplier` times longer): the task's own init, another seed;
- the parent's own step-0 weights (lottery ticket), or its weights after step k (late rewinding);
- fresh, with variance rescaled for the fan-in the mask leaves (sparsity-aware init, the study's formulas):
  conv N(0, sqrt(2 / (nnz / in_channels))); dense Glorot-uniform with limit sqrt(6 / (nnz/fan_out + nnz/fan_in));
  embedding N(0, (d * (1 - s))^-0.5), with nnz the tensor's kept weights and s its sparsity.

A trial's `init` dict says which (empty for first-stage trials)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from methods import prunable_parameters
from trainables.records import artifacts
from trainables.training.variants import VARIANTS  # noqa: F401 (re-exported)
from trainables.trial import Trial


def init_std_conv(nnz: int, in_channels: int) -> float:
    return math.sqrt(2.0 / (nnz / in_channels))


def glorot_limit(nnz: int, fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (nnz / fan_out + nnz / fan_in))


def init_std_embedding(dim: int, sparsity: float) -> float:
    return (dim * (1.0 - sparsity)) ** -0.5


@torch.no_grad()
def sparsity_aware_init_(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Re-draw every masked prunable weight with the variance its reduced fan-in calls for (torch's global RNG)."""
    for name, param in prunable_parameters(model).items():
        mask = masks[name]
        nnz = int(mask.sum())
        if nnz == 0:
            param.zero_()
            continue
        module = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        if isinstance(module, nn.Embedding):
            param.normal_(0.0, init_std_embedding(param.shape[1], 1.0 - nnz / mask.numel()))
        elif isinstance(module, nn.Linear):
            limit = glorot_limit(nnz, fan_in=param.shape[1], fan_out=param.shape[0])
            param.uniform_(-limit, limit)
        else:  # convolutions: weight (out, in / groups, *kernel)
            param.normal_(0.0, init_std_conv(nnz, param.shape[1]))


def start(trial: Trial, model: nn.Module) -> dict[str, torch.Tensor] | None:
    """Set up a dependent-stage trial's model from its parent's artifacts; return the masks to fix (None for a
    first-stage trial). Called once, on a fresh start, right after the task built the model."""
    init: dict[str, Any] = trial.init
    if not init:
        return None
    parent = trial.parent_trial_id
    masks = artifacts.load(trial.sweep_dir, parent, artifacts.MASKS)
    if init["weights"] == "parent":
        saved = artifacts.load_weights(trial.sweep_dir, parent, init["rewind_step"])
        model.load_state_dict(saved)
    if init["sparsity_aware_init"]:
        sparsity_aware_init_(model, masks)
    return masks
