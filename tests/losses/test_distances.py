"""pairwise_distances against the explicit loop, and its gradient at zero distance."""

import numpy as np
import pytest
import reference
from keras import ops

from losses import pairwise_distances


@pytest.mark.parametrize("kind", ["euclidean", "squared", "cosine"])
def test_matches_reference(kind, rng):
    emb = rng.normal(size=(9, 5)).astype("float32")
    got = ops.convert_to_numpy(pairwise_distances(emb, kind))
    want = np.array(reference.distance_matrix(emb.astype(np.float64), kind))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.all(np.diag(got) == 0)


@pytest.mark.parametrize("kind", ["euclidean", "squared", "cosine"])
def test_identical_rows_have_zero_distance_and_finite_gradient(kind, grad):
    emb = np.ones((4, 3), "float32")
    emb[3] = [1.0, -2.0, 0.5]
    value, g = grad(lambda x: ops.sum(pairwise_distances(x, kind)), emb)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    d = ops.convert_to_numpy(pairwise_distances(emb, kind))
    np.testing.assert_allclose(d[:3, :3], 0.0, atol=1e-6)


def test_unknown_distance_names_the_choices():
    with pytest.raises(ValueError, match="distance='manhattan'.*'euclidean'"):
        pairwise_distances(np.zeros((2, 2), "float32"), "manhattan")


def weighted_distance_gradient_loops(emb, weights, kind):
    """∂/∂emb of Σ_{i≠j} w_ij·d(e_i, e_j), one pair at a time in float64: d(e_k, e_j)
    enters with weight w_kj + w_jk, and ∂‖a − b‖/∂a = (a − b)/‖a − b‖, ∂‖a − b‖²/∂a =
    2·(a − b). A pair at distance 0 contributes 0 (the subgradient the loss chooses)."""
    emb = np.asarray(emb, np.float64)
    grad = np.zeros_like(emb)
    for k in range(len(emb)):
        for j in range(len(emb)):
            diff = emb[k] - emb[j]
            norm = np.sqrt(np.sum(diff * diff))
            if j == k or norm == 0:
                continue
            slope = 2.0 * diff if kind == "squared" else diff / norm
            grad[k] += (weights[k, j] + weights[j, k]) * slope
    return grad


def autodiff_distances(x, kind):
    """The expression whose autodiff gave the euclidean/squared gradient before it was
    written out by hand (losses/distances.py): the gradient must not change."""
    n = ops.sum(x * x, axis=1)
    s = ops.maximum(n[:, None] + n[None, :] - 2.0 * ops.matmul(x, ops.transpose(x)), 0.0)
    if kind == "euclidean":
        s = ops.where(s > 1e-16, ops.sqrt(ops.maximum(s, 1e-16)), 0.0)
    return ops.where(ops.eye(ops.shape(x)[0], dtype="bool"), 0.0, s)


def spread_and_repeated_rows(rng, size, dim):
    """Random rows, with rows 1 and 2 copies of row 0 and row 3 within 1e-9 of row 4."""
    emb = rng.normal(size=(size, dim)).astype("float32")
    emb[1] = emb[2] = emb[0]
    emb[3] = emb[4] + np.float32(1e-9)
    return emb


@pytest.mark.parametrize("kind", ["euclidean", "squared", "cosine"])
@pytest.mark.parametrize("size", [9, 13])
def test_gradient_matches_finite_differences(kind, size, grad, rng):
    emb = rng.normal(size=(size, 5)).astype("float32")
    weights = rng.uniform(size=(size, size))
    w = ops.convert_to_tensor(weights.astype("float32"))
    _, got = grad(lambda x: ops.sum(w * pairwise_distances(x, kind)), emb)

    def loops(x):
        return np.sum(weights * np.array(reference.distance_matrix(x, kind)))

    np.testing.assert_allclose(got, reference.numeric_gradient(loops, emb), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kind", ["euclidean", "squared"])
def test_gradient_matches_pair_loops_with_repeated_rows(kind, grad, rng):
    emb = spread_and_repeated_rows(rng, 11, 4)
    weights = rng.uniform(size=(11, 11))
    w = ops.convert_to_tensor(weights.astype("float32"))
    _, got = grad(lambda x: ops.sum(w * pairwise_distances(x, kind)), emb)
    assert np.all(np.isfinite(got))
    # Row 3 is row 4 + 1e-9: in float32 the same row, or a squared distance below the
    # floor; a 0 distance either way.
    emb64 = emb.astype(np.float64)
    emb64[3] = emb64[4]
    want = weighted_distance_gradient_loops(emb64, weights, kind)
    # ‖a‖² + ‖b‖² − 2a·b of two equal float32 rows can round to ~1e-7 instead of 0 (it
    # does under JAX's matmul): d ≈ 3e-4, and the pair's ∂/∂x = (x_k − x_j)/d, exactly 0,
    # comes out as a difference of O(Σ w/d · x) terms, off by ~1e-4 (the autodiff of the
    # old expression rounds the same way: see the next test).
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kind", ["euclidean", "squared"])
def test_values_and_gradient_match_the_autodiff_expression(kind, grad, rng):
    emb = spread_and_repeated_rows(rng, 13, 6)
    w = ops.convert_to_tensor(rng.uniform(size=(13, 13)).astype("float32"))
    value, got = grad(lambda x: ops.sum(w * pairwise_distances(x, kind)), emb)
    want_value, want = grad(lambda x: ops.sum(w * autodiff_distances(x, kind)), emb)
    np.testing.assert_allclose(value, want_value, rtol=1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(pairwise_distances(emb, kind)),
        ops.convert_to_numpy(autodiff_distances(ops.convert_to_tensor(emb), kind)),
    )


@pytest.mark.parametrize("kind", ["euclidean", "squared"])
def test_all_identical_rows_get_exactly_zero_gradient(kind, grad, rng):
    # Exactly representable entries: ‖a‖² + ‖b‖² − 2a·b is exactly 0 for every pair.
    emb = np.tile(np.array([[1.0, -2.0, 0.5]], "float32"), (6, 1))
    w = ops.convert_to_tensor(rng.uniform(size=(6, 6)).astype("float32"))
    value, g = grad(lambda x: ops.sum(w * pairwise_distances(x, kind)), emb)
    assert float(value) == 0.0
    assert np.all(g == 0)
