"""What survives of a chain of linear layers: nonzero counts and disconnected paths, per member.

For a model that is a chain of linear layers (an nn.Sequential of Linear and parameter-free layers, or its
stacked form in a pack), measured on the final masks (papers/sparsest-models.md §2.1, §5.4):

- `nnz_weights`: nonzero weights (the study's Weight NNZ: its `compute_weight_nnz`);
- `nnz_model`: nonzero weights and biases (its Model NNZ, `compute_nnz`);
- `in_degree_zero` / `out_degree_zero`: hidden neurons with no incoming / no outgoing nonzero weight;
- `effective_weights`: nonzero weights on some input-to-output path, i.e. from a neuron reachable from an input
  to one that reaches the output; `ineffective_weights` the others (nnz_weights - effective_weights);
- `paths`: the number of distinct input-to-output paths through nonzero weights;
- per layer, `mask`: its nonzero pattern, row-major (output neurons as rows), as hex (trainables/records/bits.py,
  which reads it back), for layers of at most bits.LIMIT weights (else None): a report can draw the network.

The study's own definition of "disconnected paths" is not in its released code (only the NNZ counts are);
this one is ours (docs/sparsest-models.md). A neuron with in-degree 0 but a live bias still feeds a constant
forward in training; it is on no input-to-output path, so its outgoing weights count as ineffective.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainables.records import bits

TRIAL_COLUMNS = (
    "nnz_weights",
    "nnz_model",
    "in_degree_zero",
    "out_degree_zero",
    "effective_weights",
    "ineffective_weights",
    "paths",
)
LAYER_COLUMNS = (
    "nnz_weights",
    "nnz_model",
    "in_degree_zero",
    "out_degree_zero",
    "effective_weights",
    "ineffective_weights",
    "mask",
)


def chain(model: nn.Module) -> list[nn.Module] | None:
    """The linear layers of `model` in order, if it is a chain of them (each one's output feeds the next), else
    None. Stacked layers (a pack's) count as linear."""
    if not isinstance(model, nn.Sequential):
        return None
    linear = []
    for layer in model:
        if isinstance(layer, nn.Linear) or getattr(layer, "stacked", False) and hasattr(layer, "bias"):
            linear.append(layer)
        elif list(layer.parameters()):
            return None
    if not linear:
        return None
    shapes = [layer.weight.shape[-2:] for layer in linear]
    if any(a[0] != b[1] for a, b in zip(shapes, shapes[1:])):
        return None
    return linear


@torch.no_grad()
def measure(model: nn.Module, members: int | None = None) -> list[dict[str, Any]] | None:
    """Per member (one, unpacked; `members` of a stacked model) a dict with the TRIAL_COLUMNS and `layers`: one
    dict of LAYER_COLUMNS per linear layer (None where a column does not apply: the output layer has no hidden
    neurons). None if the model is not a chain of linear layers. Reads the weights as they are: call it with the
    masks applied (the loops do: every forward pass sees them applied)."""
    layers = chain(model)
    if layers is None:
        return None
    stacked = getattr(layers[0], "stacked", False)
    adjacency = [(layer.weight != 0) for layer in layers]
    biases = [(layer.bias != 0) if layer.bias is not None else None for layer in layers]
    if not stacked:
        adjacency = [a.unsqueeze(0) for a in adjacency]
        biases = [None if b is None else b.unsqueeze(0) for b in biases]
    k = adjacency[0].shape[0]
    a = [x.to(torch.float64) for x in adjacency]  # (K, out, in)
    # forward reachability from the inputs, backward from the output
    reach = [torch.ones(k, a[0].shape[2], dtype=torch.float64, device=a[0].device)]
    for x in a:
        reach.append((torch.bmm(x, reach[-1].unsqueeze(2)).squeeze(2) > 0).to(torch.float64))
    back = [torch.ones(k, a[-1].shape[1], dtype=torch.float64, device=a[0].device)]
    for x in reversed(a):
        back.insert(0, (torch.bmm(x.transpose(1, 2), back[0].unsqueeze(2)).squeeze(2) > 0).to(torch.float64))
    paths = torch.ones(k, a[0].shape[2], 1, dtype=torch.float64, device=a[0].device)
    for x in a:
        paths = torch.bmm(x, paths)
    per_layer = []
    for i, x in enumerate(a):
        nnz = x.sum(dim=(1, 2))
        # weight (j, i) of layer l is effective iff its input neuron is reachable and its output neuron reaches out
        effective = (x * back[i + 1].unsqueeze(2) * reach[i].unsqueeze(1)).sum(dim=(1, 2))
        live_bias = biases[i].sum(dim=1).to(torch.float64) if biases[i] is not None else torch.zeros_like(nnz)
        hidden = i < len(a) - 1
        in_zero = (x.sum(dim=2) == 0).sum(dim=1) if hidden else None
        out_zero = (a[i + 1].sum(dim=1) == 0).sum(dim=1) if hidden else None
        per_layer.append((nnz, nnz + live_bias, in_zero, out_zero, effective, adjacency[i]))
    out = []
    for m in range(k):
        rows = []
        for nnz, model_nnz, in_zero, out_zero, effective, pattern in per_layer:
            rows.append(
                {
                    "nnz_weights": int(nnz[m]),
                    "nnz_model": int(model_nnz[m]),
                    "in_degree_zero": None if in_zero is None else int(in_zero[m]),
                    "out_degree_zero": None if out_zero is None else int(out_zero[m]),
                    "effective_weights": int(effective[m]),
                    "ineffective_weights": int(nnz[m] - effective[m]),
                    "mask": bits.to_hex(pattern[m].cpu().numpy()),
                }
            )
        out.append(
            {
                "nnz_weights": sum(r["nnz_weights"] for r in rows),
                "nnz_model": sum(r["nnz_model"] for r in rows),
                "in_degree_zero": sum(r["in_degree_zero"] or 0 for r in rows),
                "out_degree_zero": sum(r["out_degree_zero"] or 0 for r in rows),
                "effective_weights": sum(r["effective_weights"] for r in rows),
                "ineffective_weights": sum(r["ineffective_weights"] for r in rows),
                "paths": int(round(float(paths[m].sum()))),
                "layers": rows,
            }
        )
    if members is not None and members != k:
        raise ValueError(f"a stacked model of {members} members was expected, it has {k}")
    return out
