"""Eligible masks of one linear layer for the combinatorial search (papers/sparsest-models.md §3.4).

Zhang & Papyan (2024), "Sparsest Models Elude Pruning", enumerate the unstructured 0/1 masks of a linear layer
with `out` rows (output neurons) and `inp` columns (input neurons). A mask is *eligible* with `nnz` ones iff

1. it has exactly `nnz` ones;
2. it has no all-zero row (every output neuron has in-degree >= 1);
3. it has no all-zero column (every input neuron has out-degree >= 1);
4. it is the one representative of its row-permutation orbit (an orbit is the multiset of the mask's rows).

A row is an int whose bit for input j is ``1 << (inp - 1 - j)``: input 0 is the most significant bit, so reading
the row left to right gives its binary value. A mask is a tuple of `out` row ints.

Canonical representative and order (our exact definition of the study's recursive construction):

- a representative's rows are in non-increasing order of the key (popcount(row), row value);
- for given (inp, out, nnz) the representatives are listed in increasing lexicographic order of their budget
  vector (the tuple of row popcounts, first row first, which is non-increasing), and within one budget vector in
  decreasing lexicographic order of the tuple of row values.

This mimics `recursive_construct_budget` (the first row's budget from ceil(nnz/out) upward, later rows no larger)
followed by rows of equal budget in non-increasing binary order.

`count` needs no enumeration: it counts multisets of `out` nonzero rows with total popcount `nnz` by a generating
function and keeps those whose OR covers every column by inclusion-exclusion over the column subsets.

>>> count(3, 3, 6), len(masks(3, 3, 6)), total(3, 3)
(16, 16, 57)
>>> mask(2, 3, 3, 0)
(2, 2, 1)
>>> to_matrix((2, 2, 1), 2)
[[1, 0], [1, 0], [0, 1]]
"""

from __future__ import annotations

from functools import cache, lru_cache
from math import comb

__all__ = ["count", "mask", "masks", "nnz_range", "to_matrix", "total"]


def _check_int(name: str, value: object, minimum: int | None = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = "an int" if minimum is None else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return value


def _check_layer(inp: object, out: object) -> tuple[int, int]:
    return _check_int("inp", inp), _check_int("out", out)


def nnz_range(inp: int, out: int) -> range:
    """The nnz values that have eligible masks: max(inp, out) .. inp * out."""
    inp, out = _check_layer(inp, out)
    return range(max(inp, out), inp * out + 1)


@cache
def _multisets(s: int, out: int) -> tuple[int, ...]:
    """c[n] = number of multisets of `out` nonzero rows over `s` columns with total popcount n (n = 0 .. s*out)."""
    # poly[r][n]: multisets of r rows with total popcount n, built one popcount p at a time.
    poly = [[0] * (s * out + 1) for _ in range(out + 1)]
    poly[0][0] = 1
    for p in range(1, s + 1):
        kinds = comb(s, p)  # distinct rows of popcount p
        choose = [comb(kinds + j - 1, j) for j in range(out + 1)]  # multisets of j such rows
        new = [row[:] for row in poly]  # j = 0 rows of popcount p
        for r in range(out):
            for n in range(r * (p - 1) + 1):  # so far every row has popcount < p
                if ways := poly[r][n]:
                    for j in range(1, out - r + 1):
                        new[r + j][n + p * j] += ways * choose[j]
        poly = new
    return tuple(poly[out])


@cache
def _counts(inp: int, out: int) -> tuple[int, ...]:
    """Eligible-mask counts indexed by nnz = 0 .. inp*out (inclusion-exclusion over the columns used)."""
    result = [0] * (inp * out + 1)
    for s in range(1, inp + 1):
        sign_ways = (-1) ** (inp - s) * comb(inp, s)
        for n, c in enumerate(_multisets(s, out)):
            result[n] += sign_ways * c
    return tuple(result)


def count(inp: int, out: int, nnz: int) -> int:
    """Number of eligible masks (row-permutation orbits) with `nnz` ones; 0 when nnz is impossible."""
    inp, out = _check_layer(inp, out)
    nnz = _check_int("nnz", nnz, minimum=None)
    if nnz not in range(max(inp, out), inp * out + 1):
        return 0
    return _counts(inp, out)[nnz]


def total(inp: int, out: int) -> int:
    """Number of eligible masks over every nnz."""
    inp, out = _check_layer(inp, out)
    return sum(_counts(inp, out))


def _budgets(nnz: int, rows: int, cap: int) -> list[tuple[int, ...]]:
    """Non-increasing tuples of `rows` popcounts in [1, cap] summing to nnz, in increasing lexicographic order."""
    if rows == 0:
        return [()] if nnz == 0 else []
    first_lo = -(-nnz // rows)  # ceil: the first row is the largest
    first_hi = min(cap, nnz - (rows - 1))
    return [(b, *rest) for b in range(first_lo, first_hi + 1) for rest in _budgets(nnz - b, rows - 1, b)]


@lru_cache(maxsize=None, typed=True)  # typed: masks(2.0, ...) must not hit the cache of masks(2, ...)
def masks(inp: int, out: int, nnz: int) -> tuple[tuple[int, ...], ...]:
    """All eligible masks with `nnz` ones, in canonical order (see the module docstring)."""
    inp, out = _check_layer(inp, out)
    nnz = _check_int("nnz", nnz, minimum=None)
    if nnz not in range(max(inp, out), inp * out + 1):
        return ()
    full = (1 << inp) - 1
    by_popcount: list[list[int]] = [[] for _ in range(inp + 1)]
    for value in range(full, 0, -1):  # decreasing value within each popcount
        by_popcount[value.bit_count()].append(value)

    found: list[tuple[int, ...]] = []
    for budget in _budgets(nnz, out, inp):
        # left[i]: ones still to place in rows i+1 .. out-1, the most columns they can still cover
        left = tuple(sum(budget[i + 1 :]) for i in range(out))
        _extend(found, [], budget, left, by_popcount, full, 0, 0, 0)
    return tuple(found)


def _extend(
    found: list[tuple[int, ...]],
    chosen: list[int],
    budget: tuple[int, ...],
    left: tuple[int, ...],
    by_popcount: list[list[int]],
    full: int,
    i: int,
    start: int,
    covered: int,
) -> None:
    """Append to `found` every completion of `chosen` (rows 0 .. i-1) for this budget vector, in canonical order."""
    candidates = by_popcount[budget[i]]
    # rows of equal budget are non-increasing in value: resume at the previous row's index
    for k in range(start, len(candidates)):
        now = covered | candidates[k]
        if (full & ~now).bit_count() > left[i]:
            continue  # the remaining rows cannot cover the uncovered columns
        chosen.append(candidates[k])
        if i + 1 == len(budget):
            found.append(tuple(chosen))
        else:
            nxt = k if budget[i + 1] == budget[i] else 0
            _extend(found, chosen, budget, left, by_popcount, full, i + 1, nxt, now)
        chosen.pop()


def mask(inp: int, out: int, nnz: int, index: int) -> tuple[int, ...]:
    """The index-th (0-based) eligible mask with `nnz` ones in canonical order."""
    index = _check_int("index", index, minimum=None)
    listed = masks(inp, out, nnz)
    if not 0 <= index < len(listed):
        raise IndexError(
            f"layer {inp}->{out} has {len(listed)} eligible masks with {nnz} nonzeros; index {index} is out of range"
        )
    return listed[index]


def to_matrix(rows: tuple[int, ...] | list[int], inp: int) -> list[list[int]]:
    """The 0/1 matrix of a mask: one list of `inp` ints per row, input 0 first."""
    inp = _check_int("inp", inp)
    matrix = []
    for row in rows:
        row = _check_int("row", row, minimum=0)
        if row >> inp:
            raise ValueError(f"row {row} does not fit in {inp} inputs")
        matrix.append([(row >> (inp - 1 - j)) & 1 for j in range(inp)])
    return matrix
