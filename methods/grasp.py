"""GraSP (Wang et al. 2020; alecwangcq/GraSP) at initialisation, as the Sparsest-Models study runs it:
`samples_per_class` training points of each class (the first ones of the training order), logits divided by
the temperature T; g = the gradient summed over the two halves (one per class), then Hg through a second
backward of g . grad; score = -θ * Hg, normalised by |sum|. The int(N (1 - F/N)) highest scores are removed: the
mask keeps the scores strictly below the threshold (F, barring ties). Drawn weights are first re-drawn with
xavier_normal (`reinit`). The classes are read from the batch's labels (binary: y in {0, 1})."""

from __future__ import annotations

import torch
from torch import nn

from methods.global_prune import GlobalPruner
from methods.registry import register


class Tempered(nn.Module):
    def __init__(self, model: nn.Module, temperature: float):
        super().__init__()
        self.inner, self.temperature = model, temperature

    def forward(self, x):
        return self.inner(x) / self.temperature


@register
class GraSP(GlobalPruner):
    name = "grasp"

    def prune_at_init(self, model, context) -> None:
        total = self.total_weights()
        weights = list(self.params.values())
        for config, rows in self.groups():
            if self.wants_xavier(config.reinit, context.stored_init):
                self.xavier_(rows)
            halves = self._samples(context, config.samples_per_class)
            net = Tempered(model, config.temperature)
            g = None
            for half in halves:
                grads = torch.autograd.grad(context.loss(net, half).sum(), weights)
                g = list(grads) if g is None else [a + b for a, b in zip(g, grads)]
            model.zero_grad(set_to_none=True)
            for half in halves:
                grads = torch.autograd.grad(context.loss(net, half).sum(), weights, create_graph=True)
                torch.stack([(a.detach() * b).sum() for a, b in zip(g, grads)]).sum().backward()
            scores = -self.weight_rows() * self.grad_rows()
            scores = scores / (scores.sum(dim=1, keepdim=True).abs() + 1e-9)
            removed = [int(total * (1 - self.keep[r] / total)) for r in rows]
            self.set_rows(rows, _strictly_below_kth(scores[rows], removed))
        model.zero_grad(set_to_none=True)

    def _samples(self, context, per_class: int):
        """(class-0 points, class-1 points) of each member: the first `per_class` of each in its batch order. The
        labels are the batch's second element, one per example (shape (B,) or (B, 1); packed, a member axis first)."""
        xs, ys, i = [], [], 0
        while True:
            i += 1
            x, y = context.batch(i)
            if not self.stacked:
                x, y = x.unsqueeze(0), y.unsqueeze(0)
            xs.append(x)
            ys.append(y)
            labels = torch.cat(ys, dim=1)
            flat = labels.reshape(labels.shape[0], labels.shape[1], -1)[:, :, 0]
            if all(bool(((flat == c).sum(dim=1) >= per_class).all()) for c in (0, 1)):
                break
            if i >= 10_000:
                raise ValueError(f"GraSP: fewer than {per_class} training points of class 0 or 1 in 10,000 batches")
        x = torch.cat(xs, dim=1)
        members = torch.arange(x.shape[0], device=x.device)[:, None]
        halves = []
        for c in (0, 1):
            order = torch.argsort((flat != c).to(torch.int8), dim=1, stable=True)[:, :per_class]
            hx, hy = x[members, order], labels[members, order]
            halves.append((hx, hy) if self.stacked else (hx[0], hy[0]))
        return halves


def _strictly_below_kth(scores: torch.Tensor, removed: list[int]) -> torch.Tensor:
    """Per row, keep the scores strictly below the `removed[row]`-th largest (keep all when it is 0)."""
    ordered = torch.sort(scores, dim=1, descending=True).values
    idx = (torch.tensor(removed, device=scores.device) - 1).clamp(0, scores.shape[1] - 1)[:, None]
    keep = scores < ordered.gather(1, idx)
    return keep | torch.tensor([r <= 0 for r in removed], device=scores.device)[:, None]
