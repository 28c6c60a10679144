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
