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

import math

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from trainables.tasks import register
from trainables.tasks.base import Task, param_groups, world
from trainables.tasks.transformer import bleu, text
from trainables.tasks.transformer.model import PAD, Transformer, TransformerConfig, beam_search, greedy_decode
from trainables.tasks.transformer.options import TransformerOptions, TransformerSpec, synthetic_dir


@register
class TransformerWMT(TransformerSpec, Task):
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
