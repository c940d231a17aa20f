"""The Transformer / WMT14 en-de task's declaration (implemented in trainables/tasks/transformer/task.py),
torch-free."""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

from methods.config import option
from trainables.tasks import declare
from trainables.tasks.options import TaskSpec

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
    vocab_size: int = option(32_000, "shared SentencePiece vocabulary (the study's t2t subwords: 33,288)", "[8, 1e7]")
    train_steps: int = option(500_000, "optimizer steps", "[1, 1e12]")
    batch_tokens: int = option(16_384, "padded tokens per step over all workers (t2t: 2048 per core)", "[1, 1e10]")
    micro_batches: int = option(
        1, "gradient accumulation: each worker's batch is split into this many parts", "[1, 1e6]"
    )
    max_length: int = option(64, "training pairs with a side longer than this many subwords are dropped", "[1, 1e6]")
    d_model: int = option(512, "model width", "[1, 1e6]")
    d_ff: int = option(2048, "feed-forward width", "[1, 1e7]")
    heads: int = option(8, "attention heads", "[1, 4096]")
    layers: int = option(6, "encoder layers, and as many decoder layers", "[1, 1000]")
    regularization: Literal[REGULARIZATION] = option(
        "dropout+label_smoothing", "the study's flag: dropout and label smoothing, label smoothing only, or neither"
    )
    dropout: float = option(0.1, "residual, attention and ReLU dropout (when regularization has dropout)", "[0, 1)")
    label_smoothing: float = option(0.1, "label smoothing (when regularization has it)", "[0, 1)")
    lr_constant: float = option(2.0, "rsqrt schedule constant", "(0, 1000]")
    warmup_steps: int = option(8_000, "linear warmup steps of the rsqrt schedule", "[1, 1e12]")
    adam_beta1: float = option(0.9, "Adam β1", "[0, 1)")
    adam_beta2: float = option(0.997, "Adam β2", "[0, 1)")
    adam_eps: float = option(1e-9, "Adam ε", "(0, 1]")
    eval_every: int = option(50_000, "steps between evaluations (each one also checkpoints)", "[1, 1e12]")
    eval_sentences: int = option(0, "evaluate on the first N sentences of the split (0: all)", "[0, 1e9]")
    eval_batch_sentences: int = option(64, "sentences per decoding batch", "[1, 1e6]")
    beam: int = option(4, "beam size (1: greedy)", "[1, 1000]")
    length_penalty: float = option(0.6, "beam length penalty α", "[0, 10]")
    extra_length: int = option(100, "decode up to source length + this many subwords", "[0, 1e6]")
    synthetic_sentences: int = option(20_000, "training pairs in synthetic mode", "[1, 1e9]")

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


@declare
class TransformerSpec(TaskSpec):
    name = "transformer_wmt14_ende"
    implementation = "trainables.tasks.transformer.task:TransformerWMT"
    Options = TransformerOptions
    metric = "bleu_tokenized"
    mode = "max"
    max_workers = 1024

    @classmethod
    def total_steps_for(cls, options: TransformerOptions) -> int:
        return options.train_steps

    @classmethod
    def lengthened(cls, options: TransformerOptions, factor: float) -> TransformerOptions:
        """More steps under the same rsqrt schedule (it has no end to stretch)."""
        return dataclasses.replace(options, train_steps=max(1, round(options.train_steps * factor)))
