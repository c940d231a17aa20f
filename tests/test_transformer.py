"""The Transformer model and its decoders (trainables/tasks/transformer/model.py), without data."""

from __future__ import annotations

import math

import pytest
import torch

import methods
from methods.base import prunable_parameters
from trainables.tasks.transformer.model import EOS, PAD, Transformer, TransformerConfig, beam_search, greedy_decode

A, B = 2, 3  # two word tokens of a 4-token vocabulary (PAD 0, EOS 1)


def markov(table: dict[int, dict[int, float]]):
    """A decoder whose next-token distribution depends only on the previous token: output known by hand."""

    def step(last: torch.Tensor, state: dict) -> torch.Tensor:
        out = torch.full((len(last), 4), -math.inf)
        for i, prev in enumerate(last.tolist()):
            for tok, p in table.get(prev, {EOS: 1.0}).items():  # rows past EOS are ignored by the decoders
                out[i, tok] = math.log(p)
        return out

    return step


# greedy takes "a" (0.6) then EOS (0.4): p = 0.24. Beam search also keeps "b" (0.4), whose only continuation is
# EOS (1.0): p = 0.4, the better sentence. Both have length 2, so the length penalty does not change the order.
TABLE = {PAD: {A: 0.6, B: 0.4}, A: {EOS: 0.4, A: 0.3, B: 0.3}, B: {EOS: 1.0}}


def test_greedy_and_beam_on_a_model_whose_output_is_known():
    assert greedy_decode(markov(TABLE), {}, batch=2, max_len=10) == [[A], [A]]
    assert beam_search(markov(TABLE), {}, batch=2, max_len=10, beam=2, alpha=0.6) == [[B], [B]]
    assert beam_search(markov(TABLE), {}, batch=1, max_len=10, beam=4, alpha=0.0) == [[B]]


def test_length_penalty_prefers_longer_sentences_as_alpha_grows():
    # start: a 0.6, b 0.4; after a: EOS 0.5, a 0.5; after b: b 0.7, EOS 0.3; after a second b: EOS 1.
    # [a] = 0.6·0.5 = 0.30 (length 2 with EOS); [b, b] = 0.4·0.7·1 = 0.28 (length 3).
    # α = 0: log 0.30 > log 0.28, so [a]. α = 2: log(0.30)/((5+2)/6)² = -0.885 < log(0.28)/((5+3)/6)² = -0.716,
    # so [b, b]; every other sentence of at most 10 tokens scores below -0.716 (e.g. [a, a]: -1.067).
    table = {PAD: {A: 0.6, B: 0.4}, A: {EOS: 0.5, A: 0.5}, B: {B: 0.7, EOS: 0.3}}

    def step(last, state):
        state["b"] += last == B  # b's emitted so far, per row (beam_search reorders it with the beams)
        out = markov(table)(last, state)
        out[state["b"] >= 2] = torch.tensor([-math.inf, 0.0, -math.inf, -math.inf])
        return out

    assert beam_search(step, {"b": torch.zeros(1, dtype=torch.long)}, 1, 10, beam=4, alpha=0.0) == [[A]]
    assert beam_search(step, {"b": torch.zeros(1, dtype=torch.long)}, 1, 10, beam=4, alpha=2.0) == [[B, B]]


def tiny(vocab=50, **kw) -> Transformer:
    torch.manual_seed(0)
    cfg = dict(vocab_size=vocab, d_model=32, d_ff=64, heads=4, encoder_layers=2, decoder_layers=2)
    return Transformer(TransformerConfig(**{**cfg, **kw}))


def batch(vocab=50, b=3, s=7, t=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(2, vocab, (b, s), generator=g)
    tgt = torch.randint(2, vocab, (b, t), generator=g)
    src[0, -2:] = PAD  # ragged batch: padding must not change the real positions' outputs
    return src, tgt


def test_incremental_decoding_matches_the_full_forward():
    model = tiny().eval()
    src, tgt = batch()
    full = torch.log_softmax(model(src, tgt), -1)
    state = model.decoder_state(src)
    last = torch.full((3,), PAD, dtype=torch.long)
    for t in range(tgt.shape[1]):
        step = model.decode_step(last, state)
        torch.testing.assert_close(step, full[:, t], atol=1e-5, rtol=1e-5)
        last = tgt[:, t]


def test_padding_does_not_leak_into_the_encoding():
    model = tiny().eval()
    src, tgt = batch()
    padded = model(src, tgt)[0]
    alone = model(src[:1, :-2], tgt[:1])[0]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


def test_the_shared_matrix_is_one_prunable_tensor_used_three_ways():
    model = tiny()
    names = list(prunable_parameters(model))
    assert names[0] == "embedding.weight" and "softmax.weight" not in names
    assert model.softmax.weight is model.embedding.weight
    # every attention projection and feed-forward kernel is prunable: 4 + 2 per encoder layer, 8 + 2 per decoder
    assert len(names) == 1 + 2 * 6 + 2 * 10


@pytest.mark.parametrize("method", ["magnitude", "random", "variational_dropout", "l0"])
def test_every_method_trains_and_decodes_the_transformer(method):
    model = tiny()
    cls = methods.get(method)
    target = 0.5 if cls.targets_sparsity else None
    opts = {"begin_step": 1, "end_step": 3, "frequency": 1} if cls.targets_sparsity else {"weight": 1e-4}
    sparsifier = cls(cls.Config(**opts), target, seed=0)
    sparsifier.prepare(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    src, tgt = batch()
    for step in range(1, 4):
        logits = model(src, tgt)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD)
        (loss + sparsifier.penalty(step)).backward()
        optimizer.step()
        optimizer.zero_grad()
        sparsifier.after_step(step)
    if cls.targets_sparsity:
        assert sparsifier.sparsity() == pytest.approx(0.5, abs=0.01)
        assert (model.embedding.weight == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    model.eval()
    out = beam_search(model.decode_step, model.decoder_state(src), 3, 8, beam=2)
    assert len(out) == 3 and all(PAD not in s for s in out)


def test_vd_noise_is_shared_by_the_positions_of_a_sequence():
    """The study's broadcast_matmul_train: one ε per (example, output unit) for 3-D inputs."""
    layer = torch.nn.Linear(8, 5)
    vd = methods.get("variational_dropout")
    sparsifier = vd(vd.Config(weight=1.0, init_log_sigma2=0.0), None, seed=0)
    sparsifier.prepare(layer)
    x = torch.randn(2, 1, 8).expand(2, 6, 8)  # the same input at all 6 positions
    out = layer(x)
    torch.testing.assert_close(out, out[:, :1].expand_as(out))
    assert not torch.allclose(out[0], out[1])  # but not shared across examples (their inputs differ too)
