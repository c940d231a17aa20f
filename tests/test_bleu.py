"""Unit tests for `trainables.tasks.transformer.bleu`: the study's tokenized, compound-split BLEU and sacreBLEU, checked by hand."""

from __future__ import annotations

import math
import random
import shutil
import subprocess

import pytest
import sacrebleu

from trainables.tasks.transformer import bleu

GERMAN = "Die Katze saß auf der Matte, „oder?“ Das ist ein Test-Fall."


def test_perfect_hypothesis_scores_100_in_both_variants():
    # Every clipped n-gram precision is 1 and hyp_len == ref_len, so BP = 1 and BLEU = 100 * 1 = 100.
    assert bleu.tokenized_bleu([GERMAN], [GERMAN]) == pytest.approx(100.0)
    score, _ = bleu.sacrebleu_bleu([GERMAN], [GERMAN])
    assert score == pytest.approx(100.0)


def test_hand_computed_tokenized_bleu():
    # hyp: the cat sat on the mat   ref: the cat sat on a mat   (6 tokens each, so BP = 1)
    # 1-grams: hyp the x2, cat, sat, on, mat; ref has "the" once -> clipped 1 + 4 = 5 of 6
    # 2-grams: the cat, cat sat, sat on match; on the, the mat do not      -> 3 of 5
    # 3-grams: the cat sat, cat sat on match; sat on the, on the mat do not -> 2 of 4
    # 4-grams: the cat sat on matches; cat sat on the, sat on the mat not   -> 1 of 3
    # BLEU = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = (30/360) ** (1/4) = (1/12) ** 0.25 = 0.537284965911771
    assert bleu.tokenized_bleu(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(
        53.7284965911771, abs=1e-9
    )
    assert (1 / 12) ** 0.25 == pytest.approx(0.537284965911771, abs=1e-12)


def test_brevity_penalty():
    # hyp: the cat sat on the (5 tokens)   ref: the cat sat on the mat (6 tokens; "the" twice)
    # precisions 5/5, 4/4, 3/3, 2/2 = 1; c = 5 < r = 6 -> BP = exp(1 - 6/5) = exp(-0.2) = 0.818730753077982
    assert bleu.tokenized_bleu(["the cat sat on the"], ["the cat sat on the mat"]) == pytest.approx(
        81.8730753077982, abs=1e-9
    )


def test_counts_are_pooled_over_the_corpus():
    # Line 1 as in test_hand_computed_tokenized_bleu: 5/6, 3/5, 2/4, 1/3, lengths 6 and 6.
    # Line 2: hyp "ein Hund" vs ref "ein Hund bellt laut": 1-grams 2/2, 2-grams 1/1, no 3- or 4-grams; lengths 2, 4.
    # Corpus: (5+2)/(6+2) = 7/8, (3+1)/(5+1) = 4/6, 2/4, 1/3; c = 8, r = 10 -> BP = exp(1 - 10/8) = exp(-0.25)
    # BLEU = exp(-0.25) * (7/8 * 4/6 * 2/4 * 1/3) ** 0.25 = exp(-0.25) * (7/72) ** 0.25 = 0.7788008 * 0.5583952 = 0.434878
    hyps = ["the cat sat on the mat", "ein Hund"]
    refs = ["the cat sat on a mat", "ein Hund bellt laut"]
    assert bleu.tokenized_bleu(hyps, refs) == pytest.approx(100 * math.exp(-0.25) * (7 / 72) ** 0.25, abs=1e-9)
    assert bleu.tokenized_bleu(hyps, refs) == pytest.approx(43.4878, abs=1e-4)


def test_zero_when_no_4gram_matches():
    # hyp: the cat sat the mat   ref: the cat sat on the mat
    # 1-grams 5/5, 2-grams 3/4 (sat the misses), 3-grams 1/3 (only "the cat sat"), 4-grams 0/2
    # multi-bleu takes log(0) as -9999999999, so BLEU = exp(-2.5e9 ...) = 0 exactly.
    assert bleu.tokenized_bleu(["the cat sat the mat"], ["the cat sat on the mat"]) == 0.0
    # sacreBLEU's exp smoothing replaces the 0/2 by 1/(2 * 2) = 1/4 instead; BP = exp(1 - 6/5) = exp(-0.2):
    # exp(-0.2) * (5/5 * 3/4 * 1/3 * 1/4) ** 0.25 = exp(-0.2) * (1/16) ** 0.25 = 0.8187308 * 0.5 = 0.4093654
    score, _ = bleu.sacrebleu_bleu(["the cat sat the mat"], ["the cat sat on the mat"])
    assert score == pytest.approx(100 * math.exp(-0.2) * 0.5, abs=1e-9)


def test_lines_shorter_than_four_tokens_score_zero_even_when_identical():
    # "Hallo Welt" has no 3- or 4-grams: the corpus 4-gram total is 0, precision 0, so BLEU = 0 (not 100).
    assert bleu.tokenized_bleu(["Hallo Welt"], ["Hallo Welt"]) == 0.0


def test_empty_inputs():
    assert bleu.tokenized_bleu([], []) == 0.0
    assert bleu.tokenized_bleu([""], [""]) == 0.0
    assert bleu.tokenized_bleu([""], ["Hallo Welt heute hier"]) == 0.0  # multi-bleu.perl would divide by zero
    score, signature = bleu.sacrebleu_bleu([], [])
    assert score == 0.0 and "tok:13a" in signature
    assert bleu.sacrebleu_bleu([""], ["Hallo Welt heute hier"])[0] == 0.0


def test_split_compounds():
    assert bleu.split_compounds("Test-Fall") == "Test ##AT##-##AT## Fall"
    for unchanged in ["-Fall", "Test-", "Test - Fall", "Test -Fall", "Test- Fall", "-"]:
        assert bleu.split_compounds(unchanged) == unchanged
    # Perl's s{...}{...}g is non-overlapping, left to right: in "a-b-c" the first match "a-b" consumes the "b", so
    # the second hyphen has no unconsumed \S before it and stays: "a ##AT##-##AT## b-c" (checked with perl 5).
    # Python's re.sub scans the same way.
    assert bleu.split_compounds("a-b-c") == "a ##AT##-##AT## b-c"
    assert bleu.split_compounds("a-b-c-d") == "a ##AT##-##AT## b-c ##AT##-##AT## d"
    assert bleu.split_compounds("a--b") == "a ##AT##-##AT## -b"  # the first match is "a--", its right \S a "-"
    assert bleu.split_compounds("Öl-Ära") == "Öl ##AT##-##AT## Ära"


@pytest.mark.skipif(shutil.which("perl") is None, reason="needs perl")
def test_split_compounds_matches_the_perl_one_liner():
    lines = ["a-b-c", "a-b-c-d", "a--b", "x - y", "-a a- -", "Test-Fall", "Öl-Ära und E-Mail-Adresse", "a---b-c"]
    perl = subprocess.run(
        ["perl", "-ple", r"s{(\S)-(\S)}{$1 ##AT##-##AT## $2}g"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    assert perl.stdout.splitlines() == [bleu.split_compounds(line) for line in lines]


def test_replace_unicode_punct():
    # replace-unicode-punctuation.perl (and sacremoses' table) maps “ and ” to ", ’ to ', … to ..., ， to ",";
    # the German low quotes „ and ‚, the ‘ and the en dash – are not in its table and stay. Its fullwidth "１" maps
    # to '"' (a typo in the Perl script, reproduced; sacremoses alone would give "1"); other fullwidth digits map
    # to ASCII digits.
    text = "„Hallo“ ’s … “x” ，１２ ‚ja‘ – a"
    assert bleu.replace_unicode_punct(text) == '„Hallo" \'s ... "x" ,"2 ‚ja‘ – a'


def test_moses_tokenize_escapes_like_tokenizer_perl():
    # tokenizer.perl -l de without -no-escape: " -> &quot;, & -> &amp;, punctuation split off, hyphenated words kept.
    assert bleu.moses_tokenize('Er sagt "ja" & geht.', "de") == "Er sagt &quot; ja &quot; &amp; geht ."
    assert bleu.moses_tokenize("Das ist ein Test-Fall.", "de") == "Das ist ein Test-Fall ."
    assert bleu._moses("de") is bleu._moses("de")  # constructed once per language


def test_full_pipeline_on_one_line():
    # unicode: “ -> " and … -> ...; tokenizer: „ and " split off (" escaped), "," split; ATAT: Test-Fall split.
    assert bleu.tokenize_for_bleu("„Hallo“, sagte er… Test-Fall") == (
        "„ Hallo &quot; , sagte er ... Test ##AT##-##AT## Fall"
    )


def test_tokenisation_makes_punctuation_spacing_irrelevant():
    # Both sides become "Hallo , Welt ." (4 tokens): precisions 4/4, 3/3, 2/2, 1/1, BP = 1 -> 100.
    assert bleu.tokenize_for_bleu("Hallo, Welt.") == bleu.tokenize_for_bleu("Hallo , Welt .") == "Hallo , Welt ."
    assert bleu.tokenized_bleu(["Hallo, Welt."], ["Hallo , Welt ."]) == pytest.approx(100.0)
    # Without tokenisation the tokens "Hallo," "Welt." share no unigram with "Hallo" "," "Welt" "." -> 0.
    assert bleu.multi_bleu(["Hallo, Welt."], ["Hallo , Welt ."]) == 0.0


def test_compound_splitting_raises_the_score():
    # Unsplit, "Das ist ein neuer Test-Fall für uns" vs "... alter ...": 7 tokens, 4-grams all contain "neuer" ->
    # 0/4 -> 0. Split, 9 tokens "Das ist ein neuer Test ##AT##-##AT## Fall für uns":
    # 1-grams 8/9; 2-grams 6/8 (all but "ein neuer", "neuer Test"); 3-grams 4/7 (Das ist ein, Test ##AT## Fall,
    # ##AT## Fall für, Fall für uns); 4-grams 2/6 (Test ##AT## Fall für, ##AT## Fall für uns); BP = 1.
    # BLEU = (8/9 * 6/8 * 4/7 * 2/6) ** 0.25 = (384/3024) ** 0.25 = (8/63) ** 0.25 = 0.5969492
    hyp, ref = "Das ist ein neuer Test-Fall für uns", "Das ist ein alter Test-Fall für uns"
    assert bleu.multi_bleu([hyp], [ref]) == 0.0
    assert bleu.tokenized_bleu([hyp], [ref]) == pytest.approx(100 * (8 / 63) ** 0.25, abs=1e-9)


def test_the_variants_differ_on_unicode_quotes():
    # Hyp “ vs ref ": the study's pipeline maps “ to " first, so the token sequences are equal -> 100. sacreBLEU's
    # 13a splits the ASCII " off but not the Unicode “, so the tokens differ and the score is below 100.
    hyps, refs = ["„Ja“, sagte er heute zu mir."], ['„Ja", sagte er heute zu mir.']
    assert bleu.tokenized_bleu(hyps, refs) == pytest.approx(100.0)
    score, _ = bleu.sacrebleu_bleu(hyps, refs)
    assert score < 99 and score == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)


def test_sacrebleu_signature_and_hand_computed_score():
    # 13a leaves these tokens as they are; the n-gram arithmetic is that of test_hand_computed_tokenized_bleu
    # (no zero precision, so smoothing does not apply): 100 * (1/12) ** 0.25 = 53.7284965911771.
    score, signature = bleu.sacrebleu_bleu(["the cat sat on the mat"], ["the cat sat on a mat"])
    assert score == pytest.approx(100 * (1 / 12) ** 0.25, abs=1e-9)
    assert "tok:13a" in signature and "case:mixed" in signature and "smooth:exp" in signature
    assert f"version:{sacrebleu.__version__}" in signature
    hyps = ["Die Katze saß auf der Matte.", "Er ging nach Hause, „sagte“ sie."]
    refs = ["Die Katze sitzt auf der Matte.", "Er ging heim, sagte sie."]
    assert bleu.sacrebleu_bleu(hyps, refs)[0] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)


def test_multi_bleu_agrees_with_sacrebleu_without_tokenisation_or_smoothing():
    # An independent implementation of the same definition (whitespace tokens, no smoothing, standard BP).
    rng = random.Random(0)
    vocab = "a b c d e f g h".split()
    nonzero = 0
    for _ in range(100):
        refs = [" ".join(rng.choices(vocab, k=rng.randint(1, 15))) for _ in range(rng.randint(1, 5))]
        # hypotheses: each reference with some tokens dropped, replaced or added (or none left at all)
        hyps = [
            " ".join(t for tok in ref.split() for t in rng.choice([[tok]] * 6 + [[], [rng.choice(vocab)], [tok, "x"]]))
            for ref in refs
        ]
        expected = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", smooth_method="none", force=True).score
        assert bleu.multi_bleu(hyps, refs) == pytest.approx(expected, abs=1e-9)
        nonzero += expected > 0
    assert nonzero > 50  # most cases have 4-gram matches, so the comparison is not just 0 == 0


@pytest.mark.parametrize("fn", [bleu.tokenized_bleu, bleu.sacrebleu_bleu, bleu.multi_bleu])
def test_mismatched_lengths_raise(fn):
    with pytest.raises(ValueError) as excinfo:
        fn(["eins", "zwei"], ["eins"])
    assert "\n" not in str(excinfo.value) and "2 hypotheses" in str(excinfo.value)
