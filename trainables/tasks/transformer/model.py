"""Transformer base as the State of Sparsity trains it (papers/state-of-sparsity.md §2.1; t2t `transformer_base`).

Pre-norm encoder-decoder (layer norm before each sub-layer, dropout + residual after it, a final layer norm per
stack), sinusoidal positions, multi-head attention with separate query/key/value/output kernels and no biases,
a ReLU feed-forward block, and ONE embedding matrix shared by the source and target embeddings and the softmax.
Every matrix is a plain `nn.Linear` or `nn.Embedding` called through its module, so a sparsifier's masks or
reparameterisation see all of them: the attention projections, the feed-forward kernels and the shared
embedding/softmax (the study prunes that matrix too, in both its uses).

Decoding (`greedy_decode`, `beam_search`) is incremental: the decoder keeps each layer's keys and values, so a step
costs one position. `beam_search` follows t2t's: `2·beam` candidates per step, finished hypotheses scored by
log p / ((5 + length) / 6)^α, and a sentence stops once no live hypothesis can beat its worst finished one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

PAD, EOS = 0, 1


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int
    d_model: int = 512
    d_ff: int = 2048
    heads: int = 8
    encoder_layers: int = 6
    decoder_layers: int = 6
    dropout: float = 0.1  # residual ("prepostprocess") dropout
    attention_dropout: float = 0.1
    relu_dropout: float = 0.1

    def __post_init__(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")


def timing_signal(length: int, channels: int, device=None, start: int = 0) -> torch.Tensor:
    """t2t's sinusoids: sin over the first half of the channels, cos over the second, timescales 1 to 1e4."""
    half = channels // 2
    increment = math.log(1e4) / max(half - 1, 1)
    inv = torch.exp(torch.arange(half, device=device, dtype=torch.float32) * -increment)
    scaled = torch.arange(start, start + length, device=device, dtype=torch.float32)[:, None] * inv[None]
    signal = torch.cat([scaled.sin(), scaled.cos()], dim=1)
    return F.pad(signal, (0, channels % 2))


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        d = cfg.d_model
        self.heads, self.dropout = cfg.heads, cfg.attention_dropout
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x, keys=None, values=None, mask=None, causal=False) -> torch.Tensor:
        """`keys`/`values` (already split into heads) default to projections of `x` (self-attention)."""
        q = self.split(self.q(x))
        if keys is None:
            keys, values = self.split(self.k(x)), self.split(self.v(x))
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, dropout_p=p, is_causal=causal)
        b, h, t, dh = out.shape
        return self.o(out.transpose(1, 2).reshape(b, t, h * dh))


class FeedForward(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.up, self.down = nn.Linear(cfg.d_model, cfg.d_ff), nn.Linear(cfg.d_ff, cfg.d_model)
        self.dropout = nn.Dropout(cfg.relu_dropout)

    def forward(self, x):
        return self.down(self.dropout(F.relu(self.up(x))))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.attention_norm, self.attention = nn.LayerNorm(cfg.d_model), Attention(cfg)
        self.ffn_norm, self.ffn = nn.LayerNorm(cfg.d_model), FeedForward(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, mask):
        x = x + self.dropout(self.attention(self.attention_norm(x), mask=mask))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.self_norm, self.self_attention = nn.LayerNorm(cfg.d_model), Attention(cfg)
        self.cross_norm, self.cross_attention = nn.LayerNorm(cfg.d_model), Attention(cfg)
        self.ffn_norm, self.ffn = nn.LayerNorm(cfg.d_model), FeedForward(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, memory_kv, memory_mask, cache=None):
        """Training: `x` is the whole shifted target (causal). Decoding: `x` is one position and `cache` holds
        this layer's earlier keys and values (updated in place)."""
        h = self.self_norm(x)
        att = self.self_attention
        if cache is None:
            x = x + self.dropout(att(h, causal=True))
        else:
            k, v = att.split(att.k(h)), att.split(att.v(h))
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
            x = x + self.dropout(att(h, keys=k, values=v))
        x = x + self.dropout(self.cross_attention(self.cross_norm(x), *memory_kv, mask=memory_mask))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.softmax = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.softmax.weight = self.embedding.weight  # one matrix: source and target embedding, and the softmax
        self.dropout = nn.Dropout(cfg.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """t2t: uniform unit scaling (gain 1) for kernels, N(0, d^-0.5) for the embedding, zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Linear) and module is not self.softmax:
                bound = math.sqrt(3.0 / module.in_features)
                nn.init.uniform_(module.weight, -bound, bound)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.embedding.weight, 0.0, self.cfg.d_model**-0.5)

    def embed(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Scaled embedding (padding rows zeroed, as t2t's bottom does) plus positions, then dropout."""
        x = self.embedding(tokens) * self.cfg.d_model**0.5 * (tokens != PAD).unsqueeze(-1)
        x = x + timing_signal(tokens.shape[1], self.cfg.d_model, tokens.device, start).to(x.dtype)
        return self.dropout(x)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(memory [B, S, d], key mask [B, 1, 1, S] that is True where attention is allowed)."""
        mask = (src != PAD)[:, None, None, :]
        x = self.embed(src)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.encoder_norm(x), mask

    def memory_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each decoder layer's cross-attention keys and values (computed once per sentence when decoding)."""
        out = []
        for layer in self.decoder:
            att = layer.cross_attention
            out.append((att.split(att.k(memory)), att.split(att.v(memory))))
        return out

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, V] for every target position, teacher-forced (target shifted right by one)."""
        memory, mask = self.encode(src)
        kv = self.memory_kv(memory)
        x = self.embed(F.pad(tgt[:, :-1], (1, 0), value=PAD))
        for layer, layer_kv in zip(self.decoder, kv):
            x = layer(x, layer_kv, mask)
        return self.softmax(self.decoder_norm(x))

    def decoder_state(self, src: torch.Tensor) -> dict:
        memory, mask = self.encode(src)
        return {"kv": self.memory_kv(memory), "mask": mask, "caches": [{} for _ in self.decoder], "t": 0}

    def decode_step(self, last: torch.Tensor, state: dict) -> torch.Tensor:
        """Log-probabilities [N, V] of the next token given the previous one ([N]; PAD at the first step)."""
        x = self.embed(last[:, None], start=state["t"])
        for layer, kv, cache in zip(self.decoder, state["kv"], state["caches"]):
            x = layer(x, kv, state["mask"], cache)
        state["t"] += 1
        return F.log_softmax(self.softmax(self.decoder_norm(x))[:, 0].float(), dim=-1)


def reorder_state(state, index: torch.Tensor):
    """Select rows of every tensor in a (nested) decoder state, e.g. to follow the surviving beams."""
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index)
    if isinstance(state, dict):
        return {k: reorder_state(v, index) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(reorder_state(v, index) for v in state)
    return state


StepFn = Callable[[torch.Tensor, dict], torch.Tensor]


@torch.no_grad()
def greedy_decode(step: StepFn, state: dict, batch: int, max_len: int, device=None) -> list[list[int]]:
    """Most likely next token until EOS (not included in the output) or `max_len` tokens."""
    last = torch.full((batch,), PAD, dtype=torch.long, device=device)
    out, done = [[] for _ in range(batch)], torch.zeros(batch, dtype=torch.bool, device=device)
    for _ in range(max_len):
        last = step(last, state).argmax(-1)
        for i in (~done).nonzero().flatten().tolist():
            if last[i].item() != EOS:
                out[i].append(last[i].item())
        done |= last == EOS
        if done.all():
            break
    return out


def length_penalty(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    step: StepFn, state: dict, batch: int, max_len: int, beam: int = 4, alpha: float = 0.6, device=None
) -> list[list[int]]:
    """t2t-style beam search. `state` holds `batch` rows; it is expanded to `batch·beam` rows here.

    Each step keeps the `2·beam` best continuations of the live hypotheses; those ending in EOS become finished
    with score log p / length_penalty(length), the best `beam` others stay live. A sentence is done when its
    worst kept finished score beats what its best live hypothesis could still reach at `max_len`. The best
    finished hypothesis wins (the best live one if none finished). EOS is not part of the output.
    """
    k = beam
    rows = torch.arange(batch, device=device).repeat_interleave(k)
    state = reorder_state(state, rows)
    seqs = torch.full((batch, k, 0), PAD, dtype=torch.long, device=device)
    scores = torch.zeros(batch, k, device=device)
    scores[:, 1:] = -math.inf  # all beams start identical: only the first may expand at step 1
    last = torch.full((batch * k,), PAD, dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = [False] * batch
    for t in range(1, max_len + 1):
        logp = step(last, state).view(batch, k, -1)
        vocab = logp.shape[-1]
        candidates = (scores.unsqueeze(-1) + logp).view(batch, -1)
        top, index = candidates.topk(min(2 * k, candidates.shape[1]), dim=1)
        origin, token = index // vocab, index % vocab
        penalty = length_penalty(t, alpha)
        new_scores = torch.full((batch, k), -math.inf, device=device)
        new_origin = torch.zeros(batch, k, dtype=torch.long, device=device)
        new_token = torch.full((batch, k), EOS, dtype=torch.long, device=device)
        top_l, origin_l, token_l = top.tolist(), origin.tolist(), token.tolist()
        for b in range(batch):
            if done[b]:
                continue
            alive = 0
            for score, o, tok in zip(top_l[b], origin_l[b], token_l[b]):
                if score == -math.inf:
                    break
                if tok == EOS:
                    finished[b].append((score / penalty, seqs[b, o].tolist()))
                elif alive < k:
                    new_scores[b, alive], new_origin[b, alive], new_token[b, alive] = score, o, tok
                    alive += 1
            finished[b] = sorted(finished[b], key=lambda f: -f[0])[:k]
            best_possible = new_scores[b, 0].item() / length_penalty(max_len, alpha)
            if len(finished[b]) == k and finished[b][-1][0] >= best_possible:
                done[b] = True
        if all(done):
            break
        flat = (torch.arange(batch, device=device)[:, None] * k + new_origin).flatten()
        state = reorder_state(state, flat)
        seqs = torch.cat([seqs.gather(1, new_origin[..., None].expand(-1, -1, seqs.shape[2])), new_token[..., None]], 2)
        scores, last = new_scores, new_token.flatten()
    out = []
    for b in range(batch):
        if finished[b]:
            out.append(max(finished[b], key=lambda f: f[0])[1])
        else:
            out.append([tok for tok in seqs[b, 0].tolist() if tok != EOS])
    return out
