"""The combinatorial search's fixed masks (sweep/search.py; papers/sparsest-models.md §3.1, §3.4).

The model is a chain of linear layers d_in -> h1 -> h2 -> h3 -> d_out at least as wide as the structure
(d1, d2, d3) (the study: width 16); only the top-left block of each layer is active ([:d1, :d_in], [:d2, :d1],
[:d3, :d2], [:d_out, :d3]), so the active weights keep the wide model's initial values and scale. Phase 1
(`search_structure`) keeps the blocks dense; phase 2 (`search_mask`) keeps one eligible mask (methods/eligible.py)
in each hidden layer's block, the classifier block dense. With the model's biases following out-degree
(`bias_mask: out_degree`) the neurons outside the structure lose their biases too. The masks are set before
step 1 and never change.
"""

from __future__ import annotations

import torch

from methods import eligible
from methods.base import Sparsifier
from methods.registry import register


class _Blocks(Sparsifier):
    """Masks fixed at the start from each member's config."""

    def block_patterns(self, config, d_in: int) -> list[torch.Tensor | None]:
        """Per hidden layer, its block's pattern (None: dense)."""
        return [None] * 3

    def prune_at_init(self, model, context) -> None:
        shapes = [tuple(self.member_shape(p)) for p in self.params.values()]
        if len(shapes) != 4 or any(len(s) != 2 for s in shapes):
            raise ValueError(f"method {self.name} masks a chain of 4 linear layers; this model's weights: {shapes}")
        d_in, d_out = shapes[0][1], shapes[-1][0]
        for k, (config, _, _) in enumerate(self.members):
            widths = (d_in, *config.structure, d_out)
            blocks = [*self.block_patterns(config, d_in), None]
            for mask, shape, inp, out, pattern in zip(self._masks.values(), shapes, widths, widths[1:], blocks):
                if out > shape[0] or inp > shape[1]:
                    raise ValueError(
                        f"structure {config.structure} does not fit this model's layers {[s[::-1] for s in shapes]}"
                    )
                member = mask[k] if self.stacked else mask
                member.zero_()
                member[:out, :inp] = True if pattern is None else pattern.to(member.device)


@register
class SearchStructure(_Blocks):
    name = "search_structure"


@register
class SearchMask(_Blocks):
    name = "search_mask"

    def block_patterns(self, config, d_in: int) -> list[torch.Tensor | None]:
        patterns = []
        for inp, out, nnz, index in config.layer_masks(d_in):
            rows = eligible.mask(inp, out, nnz, index)
            patterns.append(torch.tensor(eligible.to_matrix(rows, inp), dtype=torch.bool))
        return patterns
