"""Transformer base on WMT14 en→de with the State of Sparsity's recipe (papers/state-of-sparsity.md §2.1).

Data: plain parallel text files `<data_dir>/{train,newstest2013,newstest2014}.{en,de}`, a shared SentencePiece
model trained from the training text and cached beside it, and batches of about `batch_tokens` padded tokens per
step, length-bucketed and split over the data-parallel workers (trainables/text.py). `data_dir: synthetic`
writes a small corpus of two made-up languages with a learnable mapping and trains on it (tests, CPU demos).

Recipe: Transformer base (trainables/transformer.py), Adam (0.9, 0.997, 1e-9), lr = 2·d^-0.5·min(step/8000^1.5,
step^-0.5), label smoothing 0.1, dropout 0.1, 500k steps, no weight decay, no clipping. The study's
`regularization` flag picks dropout and label smoothing together. All of it is configurable.

Evaluation: beam search (beam 4, α 0.6, up to source length + 100 tokens) over the evaluation split, then two
BLEU scores: `bleu_tokenized`, the study's (Moses tokenizer, compound split, multi-bleu), which is the primary
metric, and `sacrebleu` on the detokenised text, with its signature in the results' `metric_detail` column.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Literal

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from methods.base import option
from trainables.tasks import Task, param_groups, register, world
from trainables.tasks.transformer import bleu, text
from trainables.tasks.transformer.model import PAD, Transformer, TransformerConfig, beam_search, greedy_decode

REGULARIZATION = ("dropout+label_smoothing", "label_smoothing", "none")


@dataclasses.dataclass(frozen=True)
class TransformerOptions:
    data_dir: str = option(
        help="folder with train.<src>, newstest2013.<src>, newstest2014.<src> (and .<tgt>), or 'synthetic'"
    )
    cache_dir: str = option("", "where the subword model and encoded corpus are cached (default: data_dir)")
    src_lang: str = option("en", "source language suffix")
    tgt_lang: str = option("de", "target language suffix")
    train_split: str = option("train", "training file stem")
    eval_split: str = option(
        "newstest2014", "file stem BLEU is computed on (the study: newstest2014; dev: newstest2013)"
    )
    vocab_size: int = option(32_000, "shared SentencePiece vocabulary (the study's t2t subwords: 33,288)")
    train_steps: int = option(500_000, "optimizer steps")
    batch_tokens: int = option(16_384, "padded tokens per step over all workers (t2t: 2048 per core)")
    micro_batches: int = option(1, "gradient accumulation: each worker's batch is split into this many parts")
    max_length: int = option(64, "training pairs with a side longer than this many subwords are dropped")
    d_model: int = option(512, "model width")
    d_ff: int = option(2048, "feed-forward width")
    heads: int = option(8, "attention heads")
    layers: int = option(6, "encoder layers, and as many decoder layers")
    regularization: Literal[REGULARIZATION] = option(
        "dropout+label_smoothing", "the study's flag: dropout and label smoothing, label smoothing only, or neither"
    )
    dropout: float = option(0.1, "residual, attention and ReLU dropout (when regularization has dropout)")
    label_smoothing: float = option(0.1, "label smoothing (when regularization has it)")
    lr_constant: float = option(2.0, "rsqrt schedule constant")
    warmup_steps: int = option(8_000, "linear warmup steps of the rsqrt schedule")
    adam_beta1: float = option(0.9, "Adam β1")
    adam_beta2: float = option(0.997, "Adam β2")
    adam_eps: float = option(1e-9, "Adam ε")
    eval_every: int = option(50_000, "steps between evaluations (each one also checkpoints)")
    eval_sentences: int = option(0, "evaluate on the first N sentences of the split (0: all)")
    eval_batch_sentences: int = option(64, "sentences per decoding batch")
    beam: int = option(4, "beam size (1: greedy)")
    length_penalty: float = option(0.6, "beam length penalty α")
    extra_length: int = option(100, "decode up to source length + this many subwords")
    synthetic_sentences: int = option(20_000, "training pairs in synthetic mode")

    def __post_init__(self):
        positive = ("vocab_size", "train_steps", "batch_tokens", "micro_batches", "max_length", "d_model", "d_ff")
        positive += ("heads", "layers", "eval_every", "eval_batch_sentences", "beam", "synthetic_sentences")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        if self.warmup_steps < 1 or self.eval_sentences < 0 or self.extra_length < 0:
            raise ValueError("warmup_steps must be >= 1; eval_sentences and extra_length >= 0")
        if not 0 <= self.dropout < 1 or not 0 <= self.label_smoothing < 1:
            raise ValueError("dropout and label_smoothing must be in [0, 1)")


def synthetic_dir(options: TransformerOptions) -> str:
    root = options.cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "sparsity-sweeps")
    return os.path.join(root, f"synthetic-wmt-{options.synthetic_sentences}")


@register
class TransformerWMT(Task):
    name = "transformer_wmt14_ende"
    Options = TransformerOptions
    metric = "bleu_tokenized"
    mode = "max"
    max_workers = 1024

    def __init__(self, options: TransformerOptions, seed: int, device: torch.device):
        super().__init__(options, seed, device)
        o = options
        self.rank, self.world = world()
        if o.data_dir == "synthetic":  # generated under cache_dir; its caches go beside it
            self.data_dir = text.write_synthetic_corpus(synthetic_dir(o), train=o.synthetic_sentences)
            self.cache = None
        else:
            self.data_dir, self.cache = o.data_dir, o.cache_dir or None
        self.sp = text.subword_model(
            self.data_dir, o.train_split, o.src_lang, o.tgt_lang, o.vocab_size, cache_dir=self.cache
        )
        if o.batch_tokens % self.world:
            raise ValueError(f"batch_tokens {o.batch_tokens} does not split over {self.world} workers")
        self._batches = None
        self.cuda = device.type == "cuda"

    @property
    def batches(self) -> text.TokenBatches:
        if self._batches is None:  # encoding the corpus is deferred until training needs it
            o = self.options
            data = text.encode_split(self.data_dir, o.train_split, o.src_lang, o.tgt_lang, self.sp, self.cache)
            per_rank = o.batch_tokens // self.world
            self._batches = text.TokenBatches(data, per_rank, o.max_length, self.seed, self.rank, self.world)
        return self._batches

    @classmethod
    def total_steps_for(cls, options: TransformerOptions) -> int:
        return options.train_steps

    @classmethod
    def lengthened(cls, options: TransformerOptions, factor: float) -> TransformerOptions:
        """More steps under the same rsqrt schedule (it has no end to stretch)."""
        return dataclasses.replace(options, train_steps=max(1, round(options.train_steps * factor)))

    @property
    def micro_batches(self) -> int:
        return self.options.micro_batches

    @property
    def micro_batch_size(self) -> int:
        return 1  # sentences per micro-batch vary; DeepSpeed only needs a positive number for its bookkeeping

    @property
    def regularised(self) -> tuple[float, float]:
        """(dropout, label smoothing) as the study's regularization flag sets them."""
        o = self.options
        return (o.dropout if o.regularization == "dropout+label_smoothing" else 0.0), (
            o.label_smoothing if o.regularization != "none" else 0.0
        )

    def model_config(self) -> TransformerConfig:
        o, (dropout, _) = self.options, self.regularised
        return TransformerConfig(
            vocab_size=self.sp.get_piece_size(),
            d_model=o.d_model,
            d_ff=o.d_ff,
            heads=o.heads,
            encoder_layers=o.layers,
            decoder_layers=o.layers,
            dropout=dropout,
            attention_dropout=dropout,
            relu_dropout=dropout,
        )

    def build_model(self) -> nn.Module:
        return Transformer(self.model_config()).to(self.device)

    def build_optimizer(self, model: nn.Module, no_decay=()) -> torch.optim.Optimizer:
        o = self.options
        return torch.optim.Adam(
            param_groups(model, 0.0, no_decay),
            lr=self.learning_rate(1),
            betas=(o.adam_beta1, o.adam_beta2),
            eps=o.adam_eps,
        )

    def learning_rate(self, step: int) -> float:
        """t2t's constant·linear_warmup·rsqrt_decay·rsqrt_hidden_size: peak 9.88e-4 at step 8000 for d = 512."""
        o = self.options
        return o.lr_constant * o.d_model**-0.5 * min(step / o.warmup_steps, 1.0) / math.sqrt(max(step, o.warmup_steps))

    def batch(self, step: int):
        src, tgt = self.batches.batch(step)
        return src.to(self.device, non_blocking=True), tgt.to(self.device, non_blocking=True)

    def loss(self, model, batch) -> torch.Tensor:
        """Label-smoothed cross entropy per target token (padding excluded)."""
        src, tgt = batch
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
            logits = model(src, tgt)
        _, smoothing = self.regularised
        return F.cross_entropy(logits.float().flatten(0, 1), tgt.flatten(), ignore_index=PAD, label_smoothing=smoothing)

    def eval_data(self) -> tuple[list[str], list[str]]:
        o = self.options
        sources, references = text.read_parallel(self.data_dir, o.eval_split, o.src_lang, o.tgt_lang)
        if o.eval_sentences:
            sources, references = sources[: o.eval_sentences], references[: o.eval_sentences]
        return sources, references

    @torch.no_grad()
    def translate(self, model: nn.Module, sources: list[str]) -> list[str]:
        """Beam-search translations of `sources` (detokenised text), in order."""
        o = self.options
        module = getattr(model, "module", model)  # DDP / DeepSpeed wrap the model
        was_training = module.training
        module.eval()
        encoded = [torch.tensor([*ids, text.EOS]) for ids in self.sp.encode(sources)]
        out: list[str] = [""] * len(sources)
        for indices, src in text.eval_batches([e.numpy() for e in encoded], o.eval_batch_sentences):
            src = src.to(self.device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
                state = module.decoder_state(src)
                max_len = src.shape[1] + o.extra_length
                if o.beam == 1:
                    ids = greedy_decode(module.decode_step, state, len(indices), max_len, self.device)
                else:
                    ids = beam_search(
                        module.decode_step, state, len(indices), max_len, o.beam, o.length_penalty, self.device
                    )
            for i, hyp in zip(indices, ids):
                out[i] = self.sp.decode(hyp)
        module.train(was_training)
        return out

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Both BLEU scores on the evaluation split; each worker decodes its share of the sentences."""
        sources, references = self.eval_data()
        mine = list(range(self.rank, len(sources), self.world))
        hyps = self.translate(model, [sources[i] for i in mine])
        if self.world > 1:
            gathered: list = [None] * self.world
            dist.all_gather_object(gathered, list(zip(mine, hyps)))
            ordered = dict(pair for part in gathered for pair in part)
            hyps = [ordered[i] for i in range(len(sources))]
        score, self._signature = bleu.sacrebleu_bleu(hyps, references)
        return {"bleu_tokenized": bleu.tokenized_bleu(hyps, references, self.options.tgt_lang), "sacrebleu": score}

    def metric_details(self) -> dict[str, str]:
        o = self.options
        where = f"{o.eval_split}" + (f"[:{o.eval_sentences}]" if o.eval_sentences else "")
        details = {
            "bleu_tokenized": f"{where}; moses tokenizer -l {o.tgt_lang} + ATAT compound split; multi-bleu; "
            f"beam {o.beam}, alpha {o.length_penalty}"
        }
        if getattr(self, "_signature", None):
            details["sacrebleu"] = f"{where}; {self._signature}"
        return details
