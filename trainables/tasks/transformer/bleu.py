"""Two BLEU variants for the Transformer / WMT14 en->de task, over detokenised hypotheses and raw references.

* `sacrebleu_bleu`: sacreBLEU corpus BLEU on the detokenised text with sacreBLEU's defaults (13a tokenizer,
  case-sensitive, exp smoothing), with its signature string. This is the comparable, reproducible number.
* `tokenized_bleu`: the pipeline of the study (Gale et al. 2019, google-research state_of_sparsity
  decode/get_ende_bleu.sh, copied from tensor2tensor): on hypotheses AND references, Moses
  replace-unicode-punctuation.perl, Moses `tokenizer.perl -l de` (default escaping, no -a), "ATAT" compound
  splitting (`s{(\\S)-(\\S)}{$1 ##AT##-##AT## $2}g`), then multi-bleu.perl (case-sensitive corpus BLEU over
  whitespace tokens, no smoothing, 0 when any n-gram precision is 0).

The two differ on the same output (Post 2018, "A Call for Clarity in Reporting BLEU Scores": up to 1.8 BLEU; the
compound splitting alone inflates en->de scores). The study's numbers (27.29 BLEU, the dense mean) are tokenized,
compound-split BLEU, so compare against those with `tokenized_bleu` only.

Fidelity notes on the Python ports: replace-unicode-punctuation.perl maps fullwidth "１" to '"' (a typo in the
script, kept here; sacremoses maps it to "1") and "。 *" eats spaces only where sacremoses eats any whitespace
(identical on single-line text). The Perl ATAT one-liner runs on bytes, where \\s is ASCII whitespace only, hence
`re.ASCII`; on text from the Moses tokenizer (whitespace already collapsed to single spaces) it changes nothing.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from sacrebleu.metrics import BLEU
from sacremoses import MosesPunctNormalizer, MosesTokenizer

# Perl's s{(\S)-(\S)}{...}g and re.sub both scan left to right without overlaps: "a-b-c" -> "a ##AT##-##AT## b-c",
# since the first match consumes the "b" that the second hyphen would need as its left neighbour.
_ATAT = re.compile(r"(\S)-(\S)", re.ASCII)
_MOSES: dict[str, tuple[MosesPunctNormalizer, MosesTokenizer]] = {}


def _moses(lang: str) -> tuple[MosesPunctNormalizer, MosesTokenizer]:
    if lang not in _MOSES:
        _MOSES[lang] = (MosesPunctNormalizer(lang), MosesTokenizer(lang))
    return _MOSES[lang]


def _check_lengths(hyps: list[str], refs: list[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"got {len(hyps)} hypotheses but {len(refs)} references; the lists must be parallel")


def replace_unicode_punct(text: str) -> str:
    """Moses replace-unicode-punctuation.perl: e.g. “ ” -> ", ’ -> ', … -> ..., ， -> , (German „ and ‚ are kept)."""
    return _moses("de")[0].replace_unicode_punct(text.replace("１", '"'))


def moses_tokenize(text: str, lang: str = "de") -> str:
    """Moses `tokenizer.perl -l lang` with its default escaping (" -> &quot;, & -> &amp;, ...), no aggressive dashes."""
    return _moses(lang)[1].tokenize(text, return_str=True)


def split_compounds(text: str) -> str:
    """The ATAT compound split `perl -ple 's{(\\S)-(\\S)}{$1 ##AT##-##AT## $2}g'`: "Test-Fall" -> "Test ##AT##-##AT## Fall"."""
    return _ATAT.sub(r"\1 ##AT##-##AT## \2", text)


def tokenize_for_bleu(text: str, lang: str = "de") -> str:
    """The study's full preprocessing of one line: unicode punctuation, Moses tokenizer, compound split."""
    return split_compounds(moses_tokenize(replace_unicode_punct(text), lang))


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def multi_bleu(hyps: list[str], refs: list[str]) -> float:
    """Moses multi-bleu.perl (one reference per line) on already-tokenised lines, on the 0-100 scale.

    Corpus-level clipped n-gram precisions (n = 1..4) over whitespace tokens, case-sensitive, no smoothing; brevity
    penalty exp(1 - r/c) when c < r. Zero if any precision is zero (multi-bleu takes log(0) as -9999999999) or either
    side is empty (where multi-bleu prints 0 or dies dividing by zero).
    """
    _check_lengths(hyps, refs)
    correct, total = [0] * 4, [0] * 4
    hyp_len = ref_len = 0
    for hyp, ref in zip(hyps, refs):
        h, r = hyp.split(), ref.split()
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, 5):
            h_counts, r_counts = _ngrams(h, n), _ngrams(r, n)
            total[n - 1] += sum(h_counts.values())
            correct[n - 1] += sum(min(count, r_counts[gram]) for gram, count in h_counts.items())
    if hyp_len == 0 or ref_len == 0 or min(correct) == 0:
        return 0.0
    brevity_penalty = math.exp(1 - ref_len / hyp_len) if hyp_len < ref_len else 1.0
    return 100 * brevity_penalty * math.exp(sum(math.log(c / t) for c, t in zip(correct, total)) / 4)


def tokenized_bleu(hyps: list[str], refs: list[str], lang: str = "de") -> float:
    """The study's BLEU (get_ende_bleu.sh): `tokenize_for_bleu` on both sides, then `multi_bleu`; 0-100 scale."""
    _check_lengths(hyps, refs)
    return multi_bleu([tokenize_for_bleu(h, lang) for h in hyps], [tokenize_for_bleu(r, lang) for r in refs])


def sacrebleu_bleu(hyps: list[str], refs: list[str]) -> tuple[float, str]:
    """sacreBLEU corpus BLEU with its defaults (13a, case-sensitive, exp smoothing): (score on 0-100, signature)."""
    _check_lengths(hyps, refs)
    metric = BLEU()
    if not hyps:  # sacreBLEU cannot score an empty corpus; score one empty line so the signature is still filled in
        metric.corpus_score([""], [[""]])
        return 0.0, str(metric.get_signature())
    score = metric.corpus_score(hyps, [refs]).score
    return float(score), str(metric.get_signature())
