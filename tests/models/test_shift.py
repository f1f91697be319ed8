"""Proxy A-distance and MMD on samples whose distance is known."""

import numpy as np
import pytest

from tlpipe.models.plumbing.errors import DataError
from tlpipe.models.shift import measure_shift, mmd_squared, proxy_a_distance, shift_level

pytestmark = pytest.mark.quick


def _gaussian(n, d, mean, seed):
    return np.random.default_rng(seed).normal(mean, 1.0, size=(n, d))


def test_one_distribution_is_close_to_zero():
    pad, error = proxy_a_distance(_gaussian(400, 8, 0.0, 1), _gaussian(400, 8, 0.0, 2))
    assert pad < 0.3
    assert error > 0.4
    mmd2, _ = mmd_squared(_gaussian(300, 8, 0.0, 1), _gaussian(300, 8, 0.0, 2))
    assert abs(mmd2) < 0.01


def test_clearly_separated_domains_are_close_to_two():
    source, target = _gaussian(400, 8, 0.0, 1), _gaussian(400, 8, 6.0, 2)
    pad, error = proxy_a_distance(source, target)
    assert pad > 1.9
    assert error < 0.03
    measure = measure_shift(source, target)
    assert measure.proxy_a_distance == pad
    assert measure.mmd2 > 0.5
    assert measure.to_dict()["level"] == "large"


def test_partial_shift_lies_between_and_mmd_grows_with_it():
    source = _gaussian(400, 8, 0.0, 1)
    near, far = _gaussian(400, 8, 0.3, 2), _gaussian(400, 8, 1.0, 3)
    pad_near, pad_far = proxy_a_distance(source, near)[0], proxy_a_distance(source, far)[0]
    assert 0.0 < pad_near < pad_far < 2.0
    assert mmd_squared(source, near)[0] < mmd_squared(source, far)[0]


def test_levels_and_bad_input():
    assert [shift_level(p) for p in (0.1, 1.0, 1.8)] == ["small", "moderate", "large"]
    with pytest.raises(DataError, match="differ in size"):
        measure_shift(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(DataError, match=r"\[N, D\]"):
        proxy_a_distance(np.zeros(10), np.zeros((10, 1)))
    with pytest.raises(DataError, match="at least 4"):
        proxy_a_distance(np.zeros((2, 3)), np.ones((2, 3)))
