"""ContrastiveLoss against the explicit loop over pairs i < j."""

import numpy as np
import pytest
import reference
from keras import ops

from losses import ContrastiveLoss, contrastive_loss


@pytest.mark.parametrize("kind", ["euclidean", "squared", "cosine"])
@pytest.mark.parametrize("margin", [0.5, 2.0])
def test_matches_reference(kind, margin, rng):
    labels = rng.integers(0, 3, size=10)
    emb = rng.normal(size=(10, 4)).astype("float32")
    got = float(ContrastiveLoss(margin, kind)(labels, emb))
    np.testing.assert_allclose(got, reference.contrastive(labels, emb, margin, kind), rtol=1e-4)


@pytest.mark.parametrize("kind", ["euclidean", "squared", "cosine"])
def test_statistics_match_reference(kind, rng):
    labels = rng.integers(0, 3, size=10)
    emb = rng.normal(size=(10, 4)).astype("float32")
    stats = ContrastiveLoss(1.0, kind).statistics(labels, emb)
    got = {k: float(ops.convert_to_numpy(v)) for k, v in stats.items()}
    pos, neg = reference.mean_pair_distances(labels, emb, kind)
    active = reference.contrastive_active_fraction(labels, emb, 1.0, kind)
    np.testing.assert_allclose(got["active_fraction"], active, atol=1e-6)
    np.testing.assert_allclose(got["mean_pos_distance"], pos, rtol=1e-4)
    np.testing.assert_allclose(got["mean_neg_distance"], neg, rtol=1e-4)


def test_hand_computed_value():
    # Points 0, 0.5, 1 on a line; labels 0, 0, 1. Same pair: 0.5² = 0.25. Different pairs:
    # d = 1 → 0 and d = 0.5 → 0.5² = 0.25, mean 0.125. Total 0.375.
    emb = np.array([[0.0, 0.0], [0.0, 0.5], [0.0, 1.0]], "float32")
    assert float(ContrastiveLoss(1.0)(np.array([0, 0, 1]), emb)) == pytest.approx(0.375)


def test_gradient_matches_finite_differences(grad, rng):
    labels = rng.integers(0, 2, size=6)
    emb = rng.normal(size=(6, 3)).astype("float32")
    _, got = grad(lambda x: ops.mean(contrastive_loss(labels, x, 1.5)), emb)
    want = reference.numeric_gradient(lambda x: reference.contrastive(labels, x, 1.5), emb)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("labels", [[1, 1, 1, 1], [0, 1, 2, 3]], ids=["one-class", "no-positive"])
def test_missing_pair_kind_contributes_zero(labels, rng):
    emb = rng.normal(size=(4, 3)).astype("float32")
    got = float(ContrastiveLoss(2.0)(np.array(labels), emb))
    assert np.isfinite(got)
    np.testing.assert_allclose(got, reference.contrastive(labels, emb, 2.0), rtol=1e-4)


def test_identical_embeddings_give_finite_gradient(grad):
    emb = np.zeros((4, 3), "float32")
    value, g = grad(lambda x: ContrastiveLoss(1.0)(np.array([0, 0, 1, 1]), x), emb)
    assert float(value) == pytest.approx(1.0)  # every different pair pays (1 − 0)²
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize(
    "kwargs,match",
    [({"margin": -1.0}, "margin=-1.0"), ({"distance": "dot"}, "distance='dot'.*'squared'")],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ContrastiveLoss(**kwargs)
