"""Filter normalization (Li et al. 2018), checked filter by filter with explicit loops."""

import numpy as np
import pytest

from training.landscape import filter_normalized_direction
from training.landscape.directions import combine, difference


def _weights(rng):
    conv = rng.normal(size=(3, 3, 2, 5)).astype(np.float32)  # (kh, kw, cin, cout)
    conv[..., 3] = 0.0  # a dead filter: its direction filter must be 0 as well
    dense = rng.normal(scale=0.1, size=(7, 4)).astype(np.float32)  # (in, out)
    bias = rng.normal(size=(5,)).astype(np.float32)
    gamma = np.ones(4, np.float32)
    moving_var = np.full(4, 2.0, np.float32)
    counter = np.array([3, 4], np.int64)  # non-float state: never moved
    return [conv, bias, gamma, moving_var, dense, counter]


def test_each_filter_gets_the_norm_of_its_weight_filter():
    weights = _weights(np.random.default_rng(1))
    direction = filter_normalized_direction(weights, seed=0)
    conv, dense = weights[0], weights[4]
    for j in range(conv.shape[3]):  # conv filter = one output channel
        want = np.sqrt(sum(float(v) ** 2 for v in conv[:, :, :, j].ravel()))
        assert np.linalg.norm(direction[0][:, :, :, j]) == pytest.approx(want, rel=1e-5, abs=1e-7)
    for j in range(dense.shape[1]):  # dense filter = one output unit (column)
        want = np.sqrt(sum(float(v) ** 2 for v in dense[:, j]))
        assert np.linalg.norm(direction[4][:, j]) == pytest.approx(want, rel=1e-5)
    assert np.all(direction[0][..., 3] == 0)


def test_one_dimensional_and_non_float_params_get_zero_direction():
    weights = _weights(np.random.default_rng(2))
    direction = filter_normalized_direction(weights, seed=0)
    for i in (1, 2, 3, 5):
        assert np.all(direction[i] == 0), i
    for w, d in zip(weights, direction, strict=True):
        assert d.shape == w.shape and d.dtype == w.dtype


def test_direction_is_random_not_the_weights():
    weights = _weights(np.random.default_rng(3))
    direction = filter_normalized_direction(weights, seed=0)
    cosine = np.dot(direction[4].ravel(), weights[4].ravel()) / (
        np.linalg.norm(direction[4]) * np.linalg.norm(weights[4])
    )
    assert abs(cosine) < 0.9


def test_same_seed_same_direction_other_seed_or_stream_differs():
    weights = _weights(np.random.default_rng(4))
    a = filter_normalized_direction(weights, seed=7)
    b = filter_normalized_direction(weights, seed=7)
    c = filter_normalized_direction(weights, seed=8)
    d = filter_normalized_direction(weights, seed=7, stream=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.allclose(a[0], c[0])
    assert not np.allclose(a[0], d[0])


def test_same_seed_gives_parallel_filters_for_another_model_of_the_same_shape():
    # "Same footing": two trained models of one architecture get the same Gaussian draw,
    # each filter only rescaled to that model's own filter norm.
    first = _weights(np.random.default_rng(5))
    second = _weights(np.random.default_rng(6))
    d1 = filter_normalized_direction(first, seed=3)
    d2 = filter_normalized_direction(second, seed=3)
    for j in range(4):
        u = d1[4][:, j] / np.linalg.norm(d1[4][:, j])
        v = d2[4][:, j] / np.linalg.norm(d2[4][:, j])
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


def test_combine_and_difference_match_elementwise_arithmetic():
    rng = np.random.default_rng(7)
    weights = _weights(rng)
    d1 = [rng.normal(size=w.shape).astype(w.dtype) for w in weights]
    d2 = [rng.normal(size=w.shape).astype(w.dtype) for w in weights]
    out = combine(weights, [(0.5, d1), (-2.0, d2)])
    for w, a, b, o in zip(weights, d1, d2, out, strict=True):
        if w.dtype.kind == "f":
            np.testing.assert_allclose(o, w + 0.5 * a - 2.0 * b, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(o, w)
    step = difference(d1, weights)
    np.testing.assert_allclose(step[0], d1[0] - weights[0], rtol=1e-6)
    np.testing.assert_array_equal(step[5], np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="length"):
        difference(d1, weights[:2])
