"""Unit tests for `trainables.datasets`: the Cubist Spiral against the counts and ranges in sparsest-models.md §1."""

import pytest
import torch

from trainables.tasks import cubist as datasets  # the Cubist Spiral data live with its task

CLASS0 = [831, 928, 1025, 1123, 1220, 1318, 1415, 1513, 1610, 1708, 1806, 1903, 2001, 2099, 2197, 2294]
CLASS1 = [609, 734, 860, 987, 1114, 1241, 1369, 1497, 1624, 1752, 1880, 2008, 2137, 2265, 2393, 2521]


@pytest.fixture(scope="module")
def spiral():
    return datasets.cubist_spiral()


def test_shapes_and_labels(spiral):
    x, y = spiral
    assert x.shape == (49982, 2) and x.dtype == torch.float32
    assert y.shape == (49982, 1) and y.dtype.is_floating_point
    assert int((y == 1).sum()) == 24991 and int((y == 0).sum()) == 24991
    assert torch.all(y[:24991] == 0) and torch.all(y[24991:] == 1)  # class 0 (outer arm) first


def test_deterministic(spiral):
    x, y = datasets.cubist_spiral()
    assert torch.equal(x, spiral[0]) and torch.equal(y, spiral[1])


def test_standardised(spiral):
    x, _ = spiral
    assert x.double().mean(dim=0).abs().max().item() < 1e-4
    assert (x.double().std(dim=0) - 1).abs().max().item() < 1e-4


def test_std_is_unbiased(spiral):
    # a biased (ddof=0) std would leave std(ddof=1) at sqrt(49982/49981) = 1 + 1.0e-5
    assert (spiral[0].double().std(dim=0) - 1).abs().max().item() < 1e-6


def test_normalised_ranges(spiral):
    x, _ = spiral
    lo, hi = x.min(dim=0).values.tolist(), x.max(dim=0).values.tolist()
    assert [round(v, 3) for v in lo] == [-1.687, -2.202]
    assert [round(v, 3) for v in hi] == [1.770, 1.742]


@pytest.mark.parametrize(
    "label, vertex", [(0, (-0.008, -0.762)), (0, (-0.459, -2.202)), (1, (0.100, -0.418)), (1, (-0.352, -1.858))]
)
def test_labels_match_arms(spiral, label, vertex):
    """The paper's normalised end vertices of each arm lie on that class's points and far from the other's."""
    x, y = spiral

    def distance(k):
        return (x[y[:, 0] == k] - torch.tensor(vertex)).abs().max(dim=1).values.min().item()

    assert distance(label) < 6e-4 and distance(1 - label) > 0.1


def test_segment_counts():
    outer, inner = datasets.cubist_segments()
    assert [len(s) for s in outer] == CLASS0
    assert [len(s) for s in inner] == CLASS1
    assert sum(CLASS0) == sum(CLASS1) == 24991
