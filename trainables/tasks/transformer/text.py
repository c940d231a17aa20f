"""Text input pipeline of the Transformer task (WMT14 en->de, papers/state-of-sparsity.md): plain parallel text files
-> one SentencePiece model shared by both languages -> token-count batches, length-bucketed and sharded over ranks.

Layout: ``<data_dir>/<split>.<lang>``, one sentence a line, the two sides aligned by line (``train.en``/``train.de``,
``newstest2013.*`` for development, ``newstest2014.*`` for test). The subword model and the encoded splits are cached
beside the data (or in `cache_dir`); concurrent trials and ranks build each cache file once, under an fcntl lock,
written under a temporary name and then renamed, so nobody ever reads a half-written file.

Determinism: a training batch is a pure function of (seed, step) -- see `TokenBatches` -- so a trial resumed from a
checkpoint by its step number alone sees exactly the batches it would have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import itertools
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import sentencepiece as spm
import torch

PAD, EOS, UNK = 0, 1, 2  # as t2t (PAD 0, EOS 1); no BOS
MODEL_TYPES = ("unigram", "bpe", "char", "word")
_ENCODE_CHUNK = 100_000  # lines per sp.encode call
_CACHE_VERSION = 1  # bump when the .npz layout changes
_MASK64 = (1 << 64) - 1


# ------------------------------------------------------------------------------------------------------------ files


def split_files(data_dir: str, split: str, src: str, tgt: str) -> tuple[str, str]:
    """<data_dir>/<split>.<src> and <data_dir>/<split>.<tgt>, e.g. train.en / train.de, newstest2014.en / .de."""
    data_dir = os.fspath(data_dir)
    return os.path.join(data_dir, f"{split}.{src}"), os.path.join(data_dir, f"{split}.{tgt}")


def _strip(line: str) -> str:
    if line.endswith("\n"):
        line = line[:-1]
    return line[:-1] if line.endswith("\r") else line


def _open_lines(path: str) -> Iterator[str]:
    # newline="\n": split on \n only (a stray \r or \u2028 inside a sentence must not add a line)
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            yield _strip(line)


def _check_exists(*paths: str) -> None:
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"parallel text file {path} does not exist (expected <data_dir>/<split>.<language>)")


def _parallel_chunks(src_file: str, tgt_file: str, size: int = _ENCODE_CHUNK) -> Iterator[tuple[list[str], list[str]]]:
    """Aligned chunks of lines of both files, streamed; ValueError (naming a file) if the line counts differ."""
    _check_exists(src_file, tgt_file)
    src_lines, tgt_lines = _open_lines(src_file), _open_lines(tgt_file)
    done = 0
    while True:
        a, b = list(itertools.islice(src_lines, size)), list(itertools.islice(tgt_lines, size))
        if len(a) != len(b):
            n_src = done + len(a) + sum(1 for _ in src_lines)
            n_tgt = done + len(b) + sum(1 for _ in tgt_lines)
            raise ValueError(f"{src_file} has {n_src} lines but {tgt_file} has {n_tgt}: the sides must be aligned")
        if not a:
            return
        done += len(a)
        yield a, b


def read_parallel(data_dir: str, split: str, src: str, tgt: str) -> tuple[list[str], list[str]]:
    """Lines of both sides (trailing newline stripped). ValueError, one line naming the file, if a file is missing
    or the two sides have different line counts."""
    src_lines, tgt_lines = [], []
    for a, b in _parallel_chunks(*split_files(data_dir, split, src, tgt)):
        src_lines += a
        tgt_lines += b
    return src_lines, tgt_lines


# ------------------------------------------------------------------------------------------------- cache plumbing


def _usable_cache_dir(folder: str) -> str:
    """`folder`, created if needed; ValueError (one line) if it cannot be written."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write-probe.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise ValueError(
            f"cannot write the text cache in {folder} ({e.strerror}): set cache_dir to a writable folder"
        ) from e
    return folder


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """Hold an exclusive fcntl lock on `path`.lock for the block (waits while another process holds it). The lock
    file is left in place: removing it would let two processes lock two different files."""
    import fcntl

    with open(path + ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_atomic(path: str, write: Callable[[io.BufferedWriter], object]) -> None:
    """`write(file)` into a unique temporary file beside `path`, then rename it to `path` (atomic on POSIX)."""
    tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _write_bytes(path: str, data: bytes) -> None:
    _write_atomic(path, lambda f: f.write(data))


# ------------------------------------------------------------------------------------------------- subword model


def _training_sentences(files: tuple[str, ...]) -> Iterator[str]:
    for path in files:
        yield from _open_lines(path)


def _train_spm(files: tuple[str, ...], vocab_size: int, model_type: str, sample_sentences: int) -> bytes:
    """Train a SentencePiece model on the lines of `files` (streamed, never all in memory); the model proto."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=_training_sentences(files),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        hard_vocab_limit=False,  # a small corpus gets a smaller vocabulary rather than an error
        input_sentence_size=sample_sentences,
        shuffle_input_sentence=True,
        character_coverage=1.0,
        num_threads=os.cpu_count() or 1,
        pad_id=PAD,
        eos_id=EOS,
        unk_id=UNK,
        bos_id=-1,
        minloglevel=1,  # warnings only; the info log is thousands of lines
    )
    return model.getvalue()


def _file_sizes(files: tuple[str, ...]) -> dict[str, int]:
    return {os.path.basename(f): os.path.getsize(f) for f in files}


def subword_model(
    data_dir: str,
    train_split: str,
    src: str,
    tgt: str,
    vocab_size: int,
    cache_dir: str | None = None,
    sample_sentences: int = 2_000_000,
    model_type: str = "unigram",
) -> spm.SentencePieceProcessor:
    """One SentencePiece model shared by both languages, trained from both sides of the training text and cached
    beside it: <cache_dir or data_dir>/spm.<src>-<tgt>.<vocab_size>.<model_type>.model (+ .vocab, and a .json with
    the sizes of the text it was trained on and the training time).

    Trained once: concurrent callers take an fcntl lock and the files are written under temporary names, then
    renamed (the .model last), so nobody reads a half-written model. Training samples `sample_sentences` lines of
    both sides together, with `hard_vocab_limit=False` (a small corpus gets a smaller vocabulary), full character
    coverage, and ids PAD 0, EOS 1, UNK 2, no BOS. A cached model whose recorded training files differ in size from
    the present ones is an error (a cache_dir shared by two corpora), not silently reused. The processor returned
    carries its file as `sp.model_file`.
    """
    if vocab_size < 4 or model_type not in MODEL_TYPES or sample_sentences < 1:
        raise ValueError(f"need vocab_size >= 4, sample_sentences >= 1, model_type in {MODEL_TYPES}")
    files = split_files(data_dir, train_split, src, tgt)
    folder = os.fspath(cache_dir) if cache_dir is not None else os.fspath(data_dir)
    stem = os.path.join(folder, f"spm.{src}-{tgt}.{vocab_size}.{model_type}")
    path = stem + ".model"
    if not os.path.exists(path):
        _check_exists(*files)
        _usable_cache_dir(folder)
        with _locked(path):
            if not os.path.exists(path):  # the lock holder before us may have trained it
                start = time.perf_counter()
                proto = _train_spm(files, vocab_size, model_type, sample_sentences)
                seconds = time.perf_counter() - start
                sp = spm.SentencePieceProcessor(model_proto=proto)
                vocab = "".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(sp.get_piece_size()))
                meta = {
                    "files": _file_sizes(files),
                    "vocab_size": vocab_size,
                    "pieces": sp.get_piece_size(),
                    "model_type": model_type,
                    "sample_sentences": sample_sentences,
                    "train_seconds": round(seconds, 2),
                }
                _write_bytes(stem + ".vocab", vocab.encode("utf-8"))
                _write_bytes(stem + ".json", json.dumps(meta, indent=1).encode())
                _write_bytes(path, proto)  # last: its presence means the set is complete
    _check_trained_on(stem, files)
    sp = spm.SentencePieceProcessor(model_file=path)
    sp.model_file = path
    return sp


def _check_trained_on(stem: str, files: tuple[str, ...]) -> None:
    try:
        with open(stem + ".json") as f:
            recorded = json.load(f).get("files", {})
    except (OSError, ValueError):
        return  # a model copied without its record: trust it
    if all(os.path.isfile(p) for p in files) and recorded and recorded != _file_sizes(files):
        raise ValueError(
            f"the cached subword model {stem}.model was trained on other text ({recorded}, now "
            f"{_file_sizes(files)}): delete it or set another cache_dir"
        )


# ------------------------------------------------------------------------------------------------------- encoding


@dataclasses.dataclass
class Encoded:
    """Token ids of aligned sentence pairs: flat int32 arrays (each sentence ends with EOS) and int64 offsets of
    length n + 1, so sentence i of the source is `src[src_offsets[i]:src_offsets[i + 1]]`."""

    src: np.ndarray
    src_offsets: np.ndarray
    tgt: np.ndarray
    tgt_offsets: np.ndarray

    def __post_init__(self):
        if len(self.src_offsets) != len(self.tgt_offsets) or len(self.src_offsets) < 1:
            raise ValueError(f"offsets of {len(self.src_offsets)} and {len(self.tgt_offsets)} entries do not align")

    def __len__(self) -> int:
        return len(self.src_offsets) - 1

    def src_lengths(self) -> np.ndarray:
        return np.diff(self.src_offsets)

    def tgt_lengths(self) -> np.ndarray:
        return np.diff(self.tgt_offsets)

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"pair {i} of {len(self)}")
        i %= len(self)
        return (
            self.src[self.src_offsets[i] : self.src_offsets[i + 1]],
            self.tgt[self.tgt_offsets[i] : self.tgt_offsets[i + 1]],
        )


def _model_key(sp: spm.SentencePieceProcessor) -> str:
    return hashlib.sha256(sp.serialized_model_proto()).hexdigest()


def _flatten(chunks: list[list[list[int]]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = [np.fromiter(map(len, ids), np.int64, len(ids)) for ids in chunks]
    flat = [np.fromiter(itertools.chain.from_iterable(ids), np.int32, int(n.sum())) for ids, n in zip(chunks, lengths)]
    offsets = np.zeros(sum(map(len, lengths)) + 1, np.int64)
    np.cumsum(np.concatenate(lengths) if lengths else np.zeros(0, np.int64), out=offsets[1:])
    return (np.concatenate(flat) if flat else np.zeros(0, np.int32)), offsets


def _encode_files(src_file: str, tgt_file: str, sp: spm.SentencePieceProcessor) -> Encoded:
    threads = os.cpu_count() or 1
    src_ids, tgt_ids = [], []
    for a, b in _parallel_chunks(src_file, tgt_file):
        src_ids.append(sp.encode(a, add_eos=True, num_threads=threads))
        tgt_ids.append(sp.encode(b, add_eos=True, num_threads=threads))
    return Encoded(*_flatten(src_ids), *_flatten(tgt_ids))


def _load_encoded(path: str, key: dict[str, object]) -> Encoded | None:
    try:
        with np.load(path) as z:
            if json.loads(str(z["key"])) != key:
                return None
            return Encoded(z["src"], z["src_offsets"], z["tgt"], z["tgt_offsets"])
    except (OSError, KeyError, ValueError):
        return None


def encode_split(
    data_dir: str, split: str, src: str, tgt: str, sp: spm.SentencePieceProcessor, cache_dir: str | None = None
) -> Encoded:
    """Both sides of a split encoded with `sp` (each sentence + EOS), cached as
    <cache_dir or data_dir>/<split>.<src>-<tgt>.<model file stem>.npz. The cache records the sha256 of the model and
    the sizes of the two text files and is rebuilt when either differs, so a retrained subword model never reuses a
    stale encoding; it is written atomically under a lock, like the model. `sp` must use PAD 0 and EOS 1."""
    if sp.pad_id() != PAD or sp.eos_id() != EOS:
        raise ValueError(f"the subword model must use pad id {PAD} and eos id {EOS}, not {sp.pad_id()}, {sp.eos_id()}")
    files = split_files(data_dir, split, src, tgt)
    _check_exists(*files)
    model_hash = _model_key(sp)
    model_file = getattr(sp, "model_file", None)
    model_stem = os.path.basename(model_file)[: -len(".model")] if model_file else f"spm-{model_hash[:16]}"
    folder = os.fspath(cache_dir) if cache_dir is not None else os.fspath(data_dir)
    path = os.path.join(folder, f"{split}.{src}-{tgt}.{model_stem}.npz")
    key = {"version": _CACHE_VERSION, "model_sha256": model_hash, "files": _file_sizes(files)}
    encoded = _load_encoded(path, key) if os.path.exists(path) else None
    if encoded is not None:
        return encoded
    _usable_cache_dir(folder)
    with _locked(path):
        encoded = _load_encoded(path, key) if os.path.exists(path) else None  # built while we waited?
        if encoded is None:
            encoded = _encode_files(*files, sp)
            arrays = {f.name: getattr(encoded, f.name) for f in dataclasses.fields(Encoded)}
            _write_atomic(path, lambda f: np.savez(f, key=np.array(json.dumps(key, sort_keys=True)), **arrays))
    return encoded


# -------------------------------------------------------------------------------------------------------- batches


def _padded(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """int64 [len(rows), longest] of the given sentences, right-padded with PAD."""
    starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
    cols = np.arange(int(lengths.max()) if len(rows) else 0)
    take = np.minimum(starts[:, None] + cols, max(len(flat) - 1, 0))
    out = np.where(cols < lengths[:, None], flat[take] if len(flat) else PAD, PAD).astype(np.int64)
    return torch.from_numpy(out)


def _chunk_sizes(sorted_lengths: np.ndarray, max_tokens: int) -> np.ndarray:
    """Greedy batch sizes over ascending lengths, each batch with size * its longest length <= max_tokens."""
    values, counts = np.unique(sorted_lengths, return_counts=True)
    sizes, current = [], 0
    for length, count in zip(values.tolist(), counts.tolist()):
        cap = max_tokens // length
        while count:
            if current >= cap:
                sizes.append(current)
                current = 0
            take = min(count, cap - current)
            current += take
            count -= take
    if current:
        sizes.append(current)
    return np.array(sizes, np.int64)


class TokenBatches:
    """Training batches by token count, length-bucketed, sharded over ranks; batch(step) depends only on (seed, step).

    Pairs longer than max_length tokens (either side, EOS included) are dropped (t2t's max_length). Per epoch: a
    seeded random permutation, then a stable sort by max(src_len, tgt_len) (so equal lengths are shuffled), then
    greedy chunking into batches whose PADDED size n_sentences * max(len in batch) <= max_tokens (the per-rank token
    budget; t2t/fairseq count padded tokens), then a seeded shuffle of the batch order; the batch list is cut to a
    multiple of `world` (a different remainder each epoch) and rank r takes batches r, r+world, ... . Because the
    chunking depends only on the sorted length sequence, the number of batches is the same every epoch, so
    steps_per_epoch is a constant. Steps are 1-based: step s is batch (s-1) % steps_per_epoch of epoch
    (s-1) // steps_per_epoch. The current epoch's plan is cached.
    """

    def __init__(self, data: Encoded, max_tokens: int, max_length: int, seed: int, rank: int = 0, world: int = 1):
        if max_length < 1 or world < 1 or not 0 <= rank < world:
            raise ValueError(f"need max_length >= 1 and 0 <= rank < world, got {max_length}, {rank}, {world}")
        if max_tokens < max_length:
            raise ValueError(f"max_tokens {max_tokens} < max_length {max_length}: a longest pair would fit no batch")
        self.data, self.max_tokens, self.max_length = data, max_tokens, max_length
        self.seed, self.rank, self.world = seed, rank, world
        src_len, tgt_len = data.src_lengths(), data.tgt_lengths()
        self.kept = np.flatnonzero((src_len <= max_length) & (tgt_len <= max_length))  # indices into `data`
        self._lengths = np.maximum(np.maximum(src_len, tgt_len), 1)[self.kept].astype(np.int32)
        self._sizes = _chunk_sizes(np.sort(self._lengths), max_tokens)
        self._starts = np.concatenate([[0], np.cumsum(self._sizes)[:-1]]).astype(np.int64)
        self.batches_per_epoch = len(self._sizes)  # all ranks together, before the cut
        self.steps_per_epoch = self.batches_per_epoch // world
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{len(self.kept)} of {len(data)} pairs have at most {max_length} tokens and make "
                f"{self.batches_per_epoch} batches of {max_tokens} tokens: fewer than the {world} ranks"
            )
        self._plan_epoch: int | None = None
        self._order = self._mine = np.zeros(0, np.int64)

    def _plan(self, epoch: int) -> None:
        if epoch == self._plan_epoch:
            return
        rng = np.random.default_rng([self.seed & _MASK64, epoch])
        perm = rng.permutation(len(self.kept))
        self._order = perm[np.argsort(self._lengths[perm], kind="stable")]
        batch_order = rng.permutation(self.batches_per_epoch)[: self.steps_per_epoch * self.world]
        self._mine = batch_order[self.rank :: self.world]
        self._plan_epoch = epoch

    def epoch_of(self, step: int) -> int:
        """The 0-based epoch that 1-based `step` falls in."""
        if step < 1:
            raise ValueError(f"steps are 1-based, got {step}")
        return (step - 1) // self.steps_per_epoch

    def indices(self, step: int) -> np.ndarray:
        """Indices into `data` of this rank's batch at `step`, in batch order (ascending length)."""
        self._plan(self.epoch_of(step))
        b = self._mine[(step - 1) % self.steps_per_epoch]
        return self.kept[self._order[self._starts[b] : self._starts[b] + self._sizes[b]]]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(src [B, S], tgt [B, T]) int64, right-padded with PAD, of this rank's batch at 1-based `step`."""
        rows = self.indices(step)
        return _padded(self.data.src, self.data.src_offsets, rows), _padded(self.data.tgt, self.data.tgt_offsets, rows)


def eval_batches(sources: list[np.ndarray], max_sentences: int) -> list[tuple[list[int], torch.Tensor]]:
    """Source sentences for decoding, sorted by length, longest first (fewer pad tokens; a memory error shows at
    once), in batches of at most max_sentences: (original indices, padded src tensor int64). Decoding outputs are put
    back in the original order by the caller."""
    if max_sentences < 1:
        raise ValueError(f"max_sentences must be >= 1, got {max_sentences}")
    order = sorted(range(len(sources)), key=lambda i: (-len(sources[i]), i))
    batches = []
    for start in range(0, len(order), max_sentences):
        rows = order[start : start + max_sentences]
        out = torch.full((len(rows), max(len(sources[i]) for i in rows)), PAD, dtype=torch.int64)
        for r, i in enumerate(rows):
            out[r, : len(sources[i])] = torch.as_tensor(np.asarray(sources[i], dtype=np.int64))
        batches.append((rows, out))
    return batches


# ----------------------------------------------------------------------------------------------- synthetic corpus

_SYNTHETIC_VERSION = 1
_SYNTHETIC_PARAMS = "synthetic.json"
_SYNTHETIC_WORDS = 200
_SRC_ONSETS, _SRC_VOWELS, _SRC_CODAS = "b d f g k l m n p r s t v z".split(), list("aeiou"), ["", "", "", "n", "s"]
_TGT_ONSETS = "b ch d f g h k l m n p r sch st t w z".split()
_TGT_VOWELS, _TGT_CODAS = ["a", "e", "i", "o", "u", "ä", "ö", "ü", "ei", "au"], ["", "", "n", "r", "t"]


def _word(rng: np.random.Generator, onsets: list[str], vowels: list[str], codas: list[str], syllables: int) -> str:
    return (
        "".join(onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))] for _ in range(syllables))
        + (codas[rng.integers(len(codas))])
    )


def _lexicon(rng: np.random.Generator, words: int) -> tuple[list[str], list[str]]:
    """`words` distinct source words and their distinct translations (about one in six hyphenated)."""
    src: dict[str, None] = {}
    while len(src) < words:
        src.setdefault(_word(rng, _SRC_ONSETS, _SRC_VOWELS, _SRC_CODAS, int(rng.integers(1, 4))))
    tgt: dict[str, None] = {}
    while len(tgt) < words:
        if rng.random() < 1 / 6:
            parts = [_word(rng, _TGT_ONSETS, _TGT_VOWELS, _TGT_CODAS, int(rng.integers(1, 3))) for _ in range(2)]
            word = "-".join(parts)
        else:
            word = _word(rng, _TGT_ONSETS, _TGT_VOWELS, _TGT_CODAS, int(rng.integers(1, 4)))
        tgt.setdefault(word)
    return list(src), list(tgt)


def synthetic_translation(words: list[str], lexicon: dict[str, str], reorder: bool = False) -> str:
    """The synthetic target of a source sentence: word-by-word translation (with `reorder`, the last word moved to
    the front), the first letter capitalised and a final full stop."""
    out = [lexicon[w] for w in words]
    if reorder:
        out = out[-1:] + out[:-1]
    sentence = " ".join(out)
    return sentence[:1].upper() + sentence[1:] + "."


def write_synthetic_corpus(
    folder: str,
    train: int = 20_000,
    dev: int = 300,
    test: int = 300,
    seed: int = 0,
    src: str = "en",
    tgt: str = "de",
    reorder: bool = False,
) -> str:
    """A small parallel corpus in the WMT file layout (train.<l>, newstest2013.<l>, newstest2014.<l>) between two
    made-up languages with a learnable mapping: 200 source words, each with a fixed distinct translation (some
    hyphenated, some with umlauts), sentences of 3-12 words drawn from a Zipf law (p ~ 1/(rank + 2): frequent words
    are learnt first, so BLEU rises within a few hundred steps), targets as `synthetic_translation` (word by word,
    capitalised, final "."; `reorder` also moves the last word to the front, which learns about twice as slowly).
    Dev and test sentences are distinct and occur nowhere else. Deterministic given the parameters; files are
    written atomically, and nothing is rewritten when `synthetic.json` records the same parameters and all files
    exist. Returns `folder`."""
    if train < 1 or dev < 0 or test < 0:
        raise ValueError(f"need train >= 1 and dev, test >= 0, got {train}, {dev}, {test}")
    folder = os.fspath(folder)
    params = {"version": _SYNTHETIC_VERSION, "train": train, "dev": dev, "test": test, "seed": seed}
    params |= {"src": src, "tgt": tgt, "reorder": reorder}
    splits = {"train": train, "newstest2013": dev, "newstest2014": test}
    files = [p for split in splits for p in split_files(folder, split, src, tgt)]
    record = os.path.join(folder, _SYNTHETIC_PARAMS)

    def done() -> bool:
        try:
            with open(record) as f:
                return json.load(f) == params and all(os.path.isfile(p) for p in files)
        except (OSError, ValueError):
            return False

    if done():
        return folder
    _usable_cache_dir(folder)
    with _locked(record):
        if done():
            return folder
        rng = np.random.default_rng([seed & _MASK64, 0x5E7])
        src_words, tgt_words = _lexicon(rng, _SYNTHETIC_WORDS)
        lexicon = dict(zip(src_words, tgt_words))
        zipf = 1 / np.arange(2, _SYNTHETIC_WORDS + 2)
        zipf /= zipf.sum()
        held_out: set[str] = set()
        sentences: dict[str, list[str]] = {}
        for split in ("newstest2013", "newstest2014", "train"):
            lines: list[str] = []
            while len(lines) < splits[split]:
                words = rng.choice(_SYNTHETIC_WORDS, int(rng.integers(3, 13)), p=zipf)
                line = " ".join(src_words[i] for i in words)
                if line in held_out:
                    continue
                if split != "train":
                    held_out.add(line)
                lines.append(line)
            sentences[split] = lines
        for split, lines in sentences.items():
            src_file, tgt_file = split_files(folder, split, src, tgt)
            targets = [synthetic_translation(line.split(" "), lexicon, reorder) for line in lines]
            _write_bytes(src_file, "".join(f"{line}\n" for line in lines).encode("utf-8"))
            _write_bytes(tgt_file, "".join(f"{line}\n" for line in targets).encode("utf-8"))
        _write_bytes(record, json.dumps(params, indent=1).encode())
    return folder
