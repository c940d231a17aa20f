"""methods.eligible: the combinatorial search's eligible masks (papers/sparsest-models.md §3.4)."""

from __future__ import annotations

import itertools

import pytest

from methods import eligible

# Orbit counts by nnz from the study's code (brute-force checked in the spec), keyed by (inp, out).
FACTS: dict[tuple[int, int], dict[int, int]] = {
    (2, 3): {3: 2, 4: 3, 5: 2, 6: 1},
    (3, 3): {3: 1, 4: 9, 5: 18, 6: 16, 7: 9, 8: 3, 9: 1},
    (3, 2): {3: 3, 4: 6, 5: 3, 6: 1},
    (2, 2): {2: 1, 3: 2, 4: 1},
    (2, 7): {7: 6, 8: 7, 9: 6, 10: 5, 11: 4, 12: 3, 13: 2, 14: 1},
    (7, 3): dict(
        enumerate([301, 2331, 8183, 17619, 26306, 29008, 24458, 16058, 8274, 3346, 1057, 259, 49, 7, 1], start=7)
    ),
    (6, 3): dict(enumerate([90, 636, 1956, 3590, 4470, 4026, 2711, 1386, 540, 160, 36, 6, 1], start=6)),
}
FACT_CASES = [(inp, out, nnz, n) for (inp, out), by_nnz in FACTS.items() for nnz, n in by_nnz.items()]


def brute_force(inp: int, out: int) -> dict[int, list[tuple[int, ...]]]:
    """Canonical orbit representatives by nnz, from all 2**(inp*out) 0/1 matrices."""
    orbits: dict[int, set[tuple[int, ...]]] = {}
    for bits in itertools.product((0, 1), repeat=inp * out):
        matrix = [bits[i * inp : (i + 1) * inp] for i in range(out)]
        if not all(any(row) for row in matrix) or not all(any(col) for col in zip(*matrix)):
            continue
        rows = [sum(b << (inp - 1 - j) for j, b in enumerate(row)) for row in matrix]
        rows.sort(key=lambda r: (bin(r).count("1"), r), reverse=True)
        orbits.setdefault(sum(bits), set()).add(tuple(rows))
    # budget vector ascending, then row values descending
    order = lambda m: (tuple(bin(r).count("1") for r in m), tuple(-r for r in m))
    return {nnz: sorted(reps, key=order) for nnz, reps in orbits.items()}


@pytest.mark.parametrize(
    "inp, out", [(1, 1), (1, 4), (4, 1), (2, 2), (2, 3), (3, 2), (3, 3), (2, 4), (4, 2), (3, 4), (4, 3), (2, 6)]
)
def test_matches_brute_force(inp, out):
    expected = brute_force(inp, out)
    assert set(expected) == set(eligible.nnz_range(inp, out))
    for nnz in range(inp * out + 2):
        reps = expected.get(nnz, [])
        assert list(eligible.masks(inp, out, nnz)) == reps, nnz
        assert eligible.count(inp, out, nnz) == len(reps), nnz
    assert eligible.total(inp, out) == sum(map(len, expected.values()))


@pytest.mark.parametrize("inp, out, nnz, n", FACT_CASES)
def test_fact_counts(inp, out, nnz, n):
    assert eligible.count(inp, out, nnz) == n


@pytest.mark.parametrize("inp, out", [(2, 3), (3, 3), (3, 2), (2, 2), (2, 7), (6, 3)])
def test_fact_enumeration(inp, out):
    for nnz, n in FACTS[inp, out].items():
        assert len(eligible.masks(inp, out, nnz)) == n


@pytest.mark.parametrize("nnz", [7, 12, 21])
def test_seven_to_three_enumeration(nnz):
    listed = eligible.masks(7, 3, nnz)
    assert len(listed) == FACTS[7, 3][nnz] == eligible.count(7, 3, nnz)
    assert len(set(listed)) == len(listed)


def test_totals_and_search_sizes():
    assert eligible.total(3, 3) == 57
    assert eligible.total(3, 2) == 13
    assert eligible.total(2, 2) == 4
    assert eligible.total(2, 3) == 8
    assert eligible.total(2, 3) * eligible.total(3, 2) * eligible.total(2, 2) == 416  # fixed init 95 %, (3,2,2)
    assert eligible.total(2, 3) * eligible.total(3, 3) * eligible.total(3, 3) == 25_992  # random init 95 %, (3,3,3)


def test_count_large_layer_without_enumeration():
    before = eligible.masks.cache_info()
    n = eligible.count(16, 16, 100)
    assert isinstance(n, int) and n > 0
    assert eligible.masks.cache_info() == before  # nothing was enumerated
    # hand counts: a permutation matrix; one extra one (a pair row with 15 distinct singletons: 16*15, or 14
    # distinct singletons plus one repeat and the pair the missing two: C(16,2)*14); the dense layer less one one
    assert eligible.count(16, 16, 16) == 1
    assert eligible.count(16, 16, 17) == 16 * 15 + 120 * 14
    assert eligible.count(16, 16, 255) == 16
    assert eligible.count(16, 16, 256) == 1
    assert eligible.total(16, 16) > n


def test_impossible_nnz():
    assert eligible.nnz_range(3, 5) == range(5, 16)
    for nnz in (-1, 0, 4, 16):
        assert eligible.count(3, 5, nnz) == 0
        assert eligible.masks(3, 5, nnz) == ()


def test_mask_and_matrix():
    assert eligible.mask(2, 3, 3, 0) == (2, 2, 1)
    assert eligible.to_matrix((2, 2, 1), 2) == [[1, 0], [1, 0], [0, 1]]
    assert eligible.to_matrix(eligible.mask(3, 3, 9, 0), 3) == [[1, 1, 1]] * 3
    assert [eligible.mask(3, 3, 6, i) for i in range(16)] == list(eligible.masks(3, 3, 6))
    with pytest.raises(
        IndexError, match=r"^layer 3->3 has 16 eligible masks with 6 nonzeros; index 20 is out of range$"
    ):
        eligible.mask(3, 3, 6, 20)
    with pytest.raises(IndexError, match="index -1 is out of range"):
        eligible.mask(3, 3, 6, -1)
    with pytest.raises(ValueError, match="does not fit"):
        eligible.to_matrix((8,), 3)


@pytest.mark.parametrize(
    "call",
    [
        lambda: eligible.count(0, 3, 3),
        lambda: eligible.count(3, -1, 3),
        lambda: eligible.count(2.0, 3, 3),
        lambda: eligible.masks(True, 3, 3),
        lambda: eligible.masks(3, 3, "6"),
        lambda: eligible.nnz_range(3, 0),
        lambda: eligible.total(None, 3),
        lambda: eligible.mask(3, 3, 6, 1.5),
    ],
)
def test_bad_arguments(call):
    with pytest.raises(ValueError, match="must be an int"):
        call()
