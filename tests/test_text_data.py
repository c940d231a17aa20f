"""Unit tests for `trainables.tasks.transformer.text` on tiny corpora in tmp_path: files, the cached SentencePiece model and encodings
(also under two concurrent processes), the (seed, step) -> batch contract of `TokenBatches`, and the synthetic corpus.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import time

import numpy as np
import pytest
import torch

from trainables.tasks.transformer import text
from trainables.tasks.transformer.text import EOS, PAD, UNK, Encoded, TokenBatches

SRC, TGT = "en", "de"
VOCAB = 400  # hard_vocab_limit=False: the tiny corpus may give fewer pieces
NATURAL = [
    (
        "The committee's report, published on Monday, was criticised (again!) by 3 members.",
        "Der Bericht des Ausschusses, der am Montag veröffentlicht wurde, wurde (erneut!) von 3 Mitgliedern kritisiert.",
    ),
    ("Why don't we meet at 10:30 a.m. in Zürich?", "Warum treffen wir uns nicht um 10:30 Uhr in Zürich?"),
    ('Prices rose by 4.5% - a "remarkable" increase.', "Die Preise stiegen um 4,5 % – ein „bemerkenswerter“ Anstieg."),
    ("She said: it's over; we're going home.", "Sie sagte: Es ist vorbei; wir gehen nach Hause."),
    ("Größere Übungen für Schüler", "Größere Übungen für Schüler – äußerst schön, oder?"),
]


def _no_tmp(folder) -> bool:
    return not [name for name in os.listdir(folder) if name.endswith(".tmp")]


def _one_line(e: pytest.ExceptionInfo) -> str:
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A synthetic corpus (2000 training pairs) whose training text also holds some natural English/German."""
    folder = tmp_path_factory.mktemp("corpus")
    text.write_synthetic_corpus(str(folder), train=2000, dev=50, test=50, seed=3)
    for lang, side in ((SRC, 0), (TGT, 1)):
        with open(folder / f"train.{lang}", "a", encoding="utf-8") as f:
            f.write("".join(f"{pair[side]}\n" for pair in NATURAL) * 3)
    return str(folder)


@pytest.fixture(scope="module")
def sp(corpus):
    return text.subword_model(corpus, "train", SRC, TGT, VOCAB)


@pytest.fixture(scope="module")
def encoded(corpus, sp):
    return text.encode_split(corpus, "train", SRC, TGT, sp)


# -------------------------------------------------------------------------------------------------------- files


def test_read_parallel(tmp_path):
    (tmp_path / "train.en").write_bytes(b"a b\r\nc\n\nlast without newline")
    (tmp_path / "train.de").write_bytes("x\ny\u2028z\nw\n\n".encode())
    src, tgt = text.read_parallel(str(tmp_path), "train", "en", "de")
    assert src == ["a b", "c", "", "last without newline"]
    assert tgt == ["x", "y\u2028z", "w", ""]  # only \n ends a line
    assert text.split_files("d", "newstest2014", "en", "de") == ("d/newstest2014.en", "d/newstest2014.de")


def test_read_parallel_errors(tmp_path):
    (tmp_path / "train.en").write_text("one\ntwo\nthree\n")
    with pytest.raises(ValueError) as e:
        text.read_parallel(str(tmp_path), "train", "en", "de")
    assert str(tmp_path / "train.de") in _one_line(e)
    (tmp_path / "train.de").write_text("eins\nzwei\n")
    with pytest.raises(ValueError) as e:
        text.read_parallel(str(tmp_path), "train", "en", "de")
    message = _one_line(e)
    assert str(tmp_path / "train.en") in message and "3" in message and "2" in message


# ---------------------------------------------------------------------------------------------- subword model


def test_subword_model_round_trip(corpus, sp):
    assert (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) == (PAD, EOS, UNK, -1)
    assert 0 < sp.get_piece_size() <= VOCAB
    assert sp.model_file == os.path.join(corpus, f"spm.{SRC}-{TGT}.{VOCAB}.unigram.model")
    assert os.path.exists(sp.model_file[: -len(".model")] + ".vocab")
    dev_src, dev_tgt = text.read_parallel(corpus, "newstest2013", SRC, TGT)
    for sentence in [*dev_src[:20], *dev_tgt[:20], *(s for pair in NATURAL for s in pair)]:
        ids = sp.encode(sentence)
        assert UNK not in ids, sentence
        assert sp.decode(ids) == sentence
    assert _no_tmp(corpus)


def test_subword_model_is_cached(corpus, sp, monkeypatch, tmp_path):
    mtime = os.stat(sp.model_file).st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("retrained a cached model")

    with monkeypatch.context() as m:
        m.setattr(text, "_train_spm", no_training)
        again = text.subword_model(corpus, "train", SRC, TGT, VOCAB)
    assert os.stat(sp.model_file).st_mtime_ns == mtime
    assert again.serialized_model_proto() == sp.serialized_model_proto()

    cache = tmp_path / "cache"  # another vocabulary size, in an explicit cache dir: a new model
    smaller = text.subword_model(corpus, "train", SRC, TGT, 150, cache_dir=str(cache))
    assert smaller.model_file == str(cache / f"spm.{SRC}-{TGT}.150.unigram.model")
    assert smaller.get_piece_size() <= 150 < sp.get_piece_size()
    assert not os.path.exists(os.path.join(corpus, f"spm.{SRC}-{TGT}.150.unigram.model"))


def test_subword_model_errors(corpus, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError) as e:  # cache dir cannot be created
        text.subword_model(corpus, "train", SRC, TGT, 120, cache_dir=str(blocker / "cache"))
    assert "cache_dir" in _one_line(e)
    with pytest.raises(ValueError) as e:
        text.subword_model(str(tmp_path), "train", SRC, TGT, 120)
    assert str(tmp_path / "train.en") in _one_line(e)

    other = tmp_path / "other"  # a cache dir shared with another corpus must not hand out the wrong model
    shutil.copytree(corpus, other, ignore=shutil.ignore_patterns("spm.*", "*.npz"))
    text.subword_model(corpus, "train", SRC, TGT, 120, cache_dir=str(tmp_path / "shared"))
    with open(other / "train.en", "a") as f:
        f.write("more\n")
    with open(other / "train.de", "a") as f:
        f.write("mehr\n")
    with pytest.raises(ValueError) as e:
        text.subword_model(str(other), "train", SRC, TGT, 120, cache_dir=str(tmp_path / "shared"))
    assert "other text" in _one_line(e)


def _train_concurrently(corpus: str, cache: str, marker: str, barrier, results) -> None:
    """Run in a spawned process: count trainings in `marker`, widen the race window, then load the model."""
    train = text._train_spm

    def counted(*args, **kwargs):
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        return train(*args, **kwargs)

    text._train_spm = counted
    barrier.wait(timeout=60)
    sp = text.subword_model(corpus, "train", SRC, TGT, 200, cache_dir=cache)
    results.put(hashlib.sha256(sp.serialized_model_proto()).hexdigest())


def test_subword_model_concurrent_callers_train_once(corpus, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    cache, marker = str(tmp_path / "cache"), str(tmp_path / "trainings")
    procs = [ctx.Process(target=_train_concurrently, args=(corpus, cache, marker, barrier, results)) for _ in "ab"]
    for p in procs:
        p.start()
    hashes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    with open(marker) as f:
        assert len(f.read().split()) == 1  # exactly one process trained
    with open(os.path.join(cache, f"spm.{SRC}-{TGT}.200.unigram.model"), "rb") as f:
        assert hashes == [hashlib.sha256(f.read()).hexdigest()] * 2
    assert _no_tmp(cache)


# ---------------------------------------------------------------------------------------------------- encoding


def test_encode_split(corpus, sp, encoded):
    src_lines, tgt_lines = text.read_parallel(corpus, "train", SRC, TGT)
    assert len(encoded) == len(src_lines) == len(tgt_lines)
    assert encoded.src.dtype == encoded.tgt.dtype == np.int32
    for i in (0, 7, len(encoded) - 1):
        s, t = encoded.pair(i)
        assert s[-1] == EOS and t[-1] == EOS and EOS not in s[:-1]
        assert sp.decode(s.tolist()) == src_lines[i] and sp.decode(t.tolist()) == tgt_lines[i]
    assert (encoded.src_lengths() == [len(sp.encode(line)) + 1 for line in src_lines]).all()
    assert os.path.exists(os.path.join(corpus, f"train.{SRC}-{TGT}.spm.{SRC}-{TGT}.{VOCAB}.unigram.npz"))


def test_encoding_cache_reused_and_invalidated(corpus, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(corpus, data, ignore=shutil.ignore_patterns("spm.*", "*.npz", "*.lock"))
    sp = text.subword_model(str(data), "train", SRC, TGT, 150)
    first = text.encode_split(str(data), "newstest2014", SRC, TGT, sp)
    cache_file = str(data / f"newstest2014.{SRC}-{TGT}.spm.{SRC}-{TGT}.150.unigram.npz")
    mtime = os.stat(cache_file).st_mtime_ns

    def no_encoding(*args, **kwargs):
        raise AssertionError("re-encoded a cached split")

    with monkeypatch.context() as m:
        m.setattr(text, "_encode_files", no_encoding)
        again = text.encode_split(str(data), "newstest2014", SRC, TGT, sp)
    assert all((getattr(first, f) == getattr(again, f)).all() for f in ("src", "src_offsets", "tgt", "tgt_offsets"))

    # another model under the same file name (retrained): the cache must not be reused
    other = text.subword_model(str(data), "train", SRC, TGT, 300, cache_dir=str(tmp_path / "elsewhere"))
    shutil.copyfile(other.model_file, sp.model_file)
    replaced = text.subword_model(str(data), "train", SRC, TGT, 150)
    second = text.encode_split(str(data), "newstest2014", SRC, TGT, replaced)
    assert os.stat(cache_file).st_mtime_ns != mtime
    expected = [replaced.encode(line) + [EOS] for line in text.read_parallel(str(data), "newstest2014", SRC, TGT)[0]]
    assert [second.pair(i)[0].tolist() for i in range(len(second))] == expected
    assert (second.src != first.src[: len(second.src)]).any() or len(second.src) != len(first.src)
    assert _no_tmp(data)


# ----------------------------------------------------------------------------------------------------- batches


def _epoch(batches: TokenBatches, epoch: int) -> list[np.ndarray]:
    spe = batches.steps_per_epoch
    return [batches.indices(step) for step in range(epoch * spe + 1, (epoch + 1) * spe + 1)]


def test_batches_are_a_function_of_seed_and_step(encoded):
    a = TokenBatches(encoded, max_tokens=300, max_length=40, seed=7)
    spe = a.steps_per_epoch
    assert spe > 10
    seen = {step: a.batch(step) for step in range(1, spe + 6)}  # into the second epoch
    b = TokenBatches(encoded, max_tokens=300, max_length=40, seed=7)  # "resumed" from a checkpoint
    for step in (spe + 3, 2, spe + 5, 1, spe + 1):
        for x, y in zip(b.batch(step), seen[step]):
            assert torch.equal(x, y)
    other_seed = TokenBatches(encoded, max_tokens=300, max_length=40, seed=8)
    assert not all(torch.equal(other_seed.batch(s)[0], seen[s][0]) for s in range(1, 6))
    with pytest.raises(ValueError):
        a.batch(0)


def test_batches_budget_contents_and_padding(encoded):
    batches = TokenBatches(encoded, max_tokens=250, max_length=30, seed=1)
    for step in range(1, batches.steps_per_epoch + 1):
        src, tgt = batches.batch(step)
        rows = batches.indices(step)
        assert src.dtype == tgt.dtype == torch.int64 and len(src) == len(tgt) == len(rows) > 0
        assert src.numel() <= 250 and tgt.numel() <= 250
        assert len(rows) * max(src.shape[1], tgt.shape[1]) <= 250
        for r, i in enumerate(rows):
            for padded, tokens in zip((src[r], tgt[r]), encoded.pair(int(i))):
                n = len(tokens)
                assert padded[:n].tolist() == tokens.tolist() and padded[n - 1] == EOS
                assert (padded[n:] == PAD).all() and PAD not in tokens


def test_max_length_drops_long_pairs(encoded):
    longest = np.maximum(encoded.src_lengths(), encoded.tgt_lengths())
    max_length = int(np.median(longest))
    batches = TokenBatches(encoded, max_tokens=200, max_length=max_length, seed=0)
    short = set(np.flatnonzero(longest <= max_length).tolist())
    assert 0 < len(short) < len(encoded)
    used = np.concatenate(_epoch(batches, 0)).tolist()
    assert set(used) <= short and len(used) == len(set(used))
    assert len(used) >= len(short) - 200  # a single rank loses nothing but the batches it does not make
    with pytest.raises(ValueError):
        TokenBatches(encoded, max_tokens=10, max_length=20, seed=0)  # a longest pair fits no batch


def test_sharding_over_two_ranks(encoded):
    ranks = [TokenBatches(encoded, max_tokens=300, max_length=40, seed=5, rank=r, world=2) for r in (0, 1)]
    single = TokenBatches(encoded, max_tokens=300, max_length=40, seed=5)
    assert ranks[0].steps_per_epoch == ranks[1].steps_per_epoch == single.batches_per_epoch // 2
    for step in (1, 2, ranks[0].steps_per_epoch + 1):
        assert not torch.equal(ranks[0].batch(step)[0], ranks[1].batch(step)[0])
    for epoch in (0, 1):
        zero, one = (set(np.concatenate(_epoch(b, epoch)).tolist()) for b in ranks)
        assert not zero & one
        cut = len(single.kept) - len(zero | one)  # the one batch left over when the count is odd
        assert cut == 0 if single.batches_per_epoch % 2 == 0 else 0 < cut <= 300
        assert zero | one <= set(single.kept.tolist())


def test_new_epoch_new_order(encoded):
    batches = TokenBatches(encoded, max_tokens=300, max_length=40, seed=2)
    first, second = _epoch(batches, 0), _epoch(batches, 1)
    assert sorted(map(len, first)) == sorted(map(len, second))  # same chunking, different order and contents
    assert [b.tolist() for b in first] != [b.tolist() for b in second]
    assert {tuple(sorted(b.tolist())) for b in first} != {tuple(sorted(b.tolist())) for b in second}
    assert sorted(np.concatenate(first).tolist()) == sorted(batches.kept.tolist())  # one rank: the whole data


def test_too_few_batches():
    tiny = Encoded(
        np.array([5, EOS, 6, EOS], np.int32), np.array([0, 2, 4]), np.array([7, EOS] * 2, np.int32), np.array([0, 2, 4])
    )
    assert TokenBatches(tiny, max_tokens=2, max_length=2, seed=0).steps_per_epoch == 2
    with pytest.raises(ValueError) as e:
        TokenBatches(tiny, max_tokens=4, max_length=2, seed=0, rank=1, world=2)
    _one_line(e)


def test_eval_batches():
    rng = np.random.default_rng(0)
    sources = [np.append(rng.integers(3, 50, int(n)), EOS).astype(np.int32) for n in rng.integers(0, 20, 23)]
    batches = text.eval_batches(sources, max_sentences=5)
    assert sorted(i for rows, _ in batches for i in rows) == list(range(23))
    lengths = [len(sources[i]) for rows, _ in batches for i in rows]
    assert lengths == sorted(lengths, reverse=True)
    for rows, padded in batches:
        assert padded.dtype == torch.int64 and padded.shape == (len(rows), len(sources[rows[0]])) and len(rows) <= 5
        for r, i in enumerate(rows):
            n = len(sources[i])
            assert padded[r, :n].tolist() == sources[i].tolist() and (padded[r, n:] == PAD).all()
    assert text.eval_batches([], 4) == []


# ------------------------------------------------------------------------------------------------ synthetic corpus


def _files(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder)) if not name.endswith(".lock")}


def test_synthetic_corpus_deterministic_and_idempotent(tmp_path):
    a, b, c = (tmp_path / name for name in "abc")
    text.write_synthetic_corpus(str(a), train=500, dev=40, test=40, seed=1)
    text.write_synthetic_corpus(str(b), train=500, dev=40, test=40, seed=1)
    text.write_synthetic_corpus(str(c), train=500, dev=40, test=40, seed=2)
    assert _files(a) == _files(b) != _files(c)
    names = {f"{split}.{lang}" for split in ("train", "newstest2013", "newstest2014") for lang in ("en", "de")}
    assert set(_files(a)) == names | {"synthetic.json"}
    mtimes = {name: os.stat(a / name).st_mtime_ns for name in _files(a)}
    assert text.write_synthetic_corpus(str(a), train=500, dev=40, test=40, seed=1) == str(a)
    assert {name: os.stat(a / name).st_mtime_ns for name in _files(a)} == mtimes
    text.write_synthetic_corpus(str(a), train=500, dev=40, test=40, seed=2)  # other parameters: rewritten
    assert _files(a) == _files(c)
    assert _no_tmp(a)


@pytest.mark.parametrize("reorder", [False, True])
def test_synthetic_corpus_is_a_learnable_translation(tmp_path, reorder):
    folder = text.write_synthetic_corpus(str(tmp_path), train=3000, dev=100, test=100, seed=0, reorder=reorder)
    train_src, train_tgt = text.read_parallel(folder, "train", "en", "de")
    dev_src, _ = text.read_parallel(folder, "newstest2013", "en", "de")
    test_src, _ = text.read_parallel(folder, "newstest2014", "en", "de")
    assert not set(dev_src) & set(train_src) and not set(test_src) & set(train_src) and not set(dev_src) & set(test_src)
    assert len(set(dev_src)) == 100 and len(set(test_src)) == 100
    lexicon: dict[str, str] = {}
    counts: dict[str, int] = {}
    for s, t in zip(train_src, train_tgt):
        words = s.split(" ")
        assert 3 <= len(words) <= 12 and t[0].isupper() and t.endswith(".")
        out = t[:-1].split(" ")
        out[0] = out[0][:1].lower() + out[0][1:]
        if reorder:
            out = out[1:] + out[:1]  # undo "last word first"
        for w, v in zip(words, out, strict=True):
            assert lexicon.setdefault(w, v) == v  # one fixed translation per word
            counts[w] = counts.get(w, 0) + 1
    assert len(lexicon) == 200 and len(set(lexicon.values())) == 200
    assert any("-" in v for v in lexicon.values()) and any(ch in "äöü" for v in lexicon.values() for ch in v)
    frequencies = sorted(counts.values(), reverse=True)
    assert sum(frequencies[:20]) > 0.4 * sum(frequencies) and frequencies[-1] >= 3  # Zipf-like, every word seen
