"""CircleLoss against the explicit loop over anchors, and against keras.losses.Circle:
equal values, different gradients (Keras does not stop the gradient through α_p, α_n)."""

import keras
import numpy as np
import pytest
import reference
from batches import DEGENERATE_EMBEDDINGS, DEGENERATE_LABELS, pk_batch, random_batch, unit
from keras import ops

import losses
from losses import CircleLoss, circle_loss

SETTINGS = [(0.4, 80.0), (0.25, 256.0), (0.1, 16.0), (0.0, 1.0)]


@pytest.mark.parametrize("margin,gamma", SETTINGS)
@pytest.mark.parametrize("make", [pk_batch, random_batch], ids=["PxK", "random-labels"])
def test_matches_reference(margin, gamma, make, rng):
    for _ in range(3):
        labels, emb = make(rng)
        got = float(CircleLoss(margin, gamma)(labels, emb))
        want = reference.circle(labels, emb, margin, gamma)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("margin,gamma", SETTINGS)
@pytest.mark.parametrize("make", [pk_batch, random_batch], ids=["PxK", "random-labels"])
def test_value_equals_keras_circle(margin, gamma, make, rng):
    labels, emb = make(rng)
    ours = CircleLoss(margin=margin, gamma=gamma)
    theirs = keras.losses.Circle(gamma=gamma, margin=margin)
    np.testing.assert_allclose(float(ours(labels, emb)), float(theirs(labels, emb)), rtol=1e-5)
    # With sample weights too: both divide Σ w_i l_i by the number of counted anchors.
    w = rng.uniform(size=len(labels)).astype("float32")
    np.testing.assert_allclose(
        float(ours(labels, emb, sample_weight=w)),
        float(theirs(labels, emb, sample_weight=w)),
        rtol=1e-5,
    )


def test_reduction_none_differs_from_keras_by_the_share_scaling(rng):
    # Keras's "none" gives l_i (0 where it masks the anchor out); ours gives the share
    # B · l_i / n_valid, whose plain mean is the loss.
    labels, emb = random_batch(rng)
    ours = ops.convert_to_numpy(CircleLoss(reduction="none")(labels, emb))
    theirs = ops.convert_to_numpy(keras.losses.Circle(reduction="none")(labels, emb))
    n_valid = len(reference.circle_terms(labels, emb))
    assert 0 < n_valid < len(labels)
    np.testing.assert_allclose(ours * n_valid / len(labels), theirs, rtol=1e-5, atol=1e-6)


def test_gradient_stops_at_the_weights_unlike_keras(grad, rng):
    labels, emb = pk_batch(rng, 2, 3, 3)
    margin, gamma = 0.25, 8.0
    _, ours = grad(lambda x: ops.mean(circle_loss(labels, x, margin, gamma)), emb)
    _, keras_grad = grad(lambda x: keras.losses.Circle(gamma, margin)(labels, x), emb)
    # The paper's gradient: α_p, α_n frozen at their current values.
    stopped = reference.numeric_gradient(
        lambda x: reference.circle(labels, x, margin, gamma, weights_from=emb), emb
    )
    # Through α as well: what Keras computes.
    through = reference.numeric_gradient(
        lambda x: reference.circle(labels, x, margin, gamma), emb
    )
    scale = np.abs(stopped).max()
    np.testing.assert_allclose(ours, stopped, rtol=1e-3, atol=1e-4 * scale)
    # Our rows are normalised inside, so our gradient has no radial part; Keras's does.
    # Comparing tangential parts isolates the stop-gradient difference.
    emb64 = emb.astype("float64")
    tangential = keras_grad - np.sum(keras_grad * emb64, axis=1, keepdims=True) * emb64
    np.testing.assert_allclose(tangential, through, rtol=1e-3, atol=1e-4 * scale)
    assert np.abs(stopped - through).max() > 0.1 * scale
    assert np.abs(ours - tangential).max() > 0.1 * scale


def test_hand_computed_value():
    # Four unit vectors at right angles, classes {0, 1} and {2, 3}. Every anchor: positive
    # at s_p = 0 (α_p = 1.4, logit 80 · 1.4 · 0.6 = 67.2); negatives at 0 (α_n = 0.4, logit
    # 80 · 0.4 · (0 − 0.4) = −12.8) and at −1 (α_n = [−0.6]₊ = 0, logit 0).
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], "float32")
    x = 67.2 + np.log(np.exp(-12.8) + 1.0)
    want = x + np.log1p(np.exp(-x))
    assert float(CircleLoss()(np.array([0, 0, 1, 1]), emb)) == pytest.approx(want, rel=1e-6)


def test_reduction_none_gives_per_anchor_shares(rng):
    labels, emb = random_batch(rng)
    shares = ops.convert_to_numpy(CircleLoss(reduction="none")(labels, emb))
    assert shares.shape == (12,)
    terms = reference.circle_terms(labels, emb)
    want = np.array([terms.get(i, 0.0) for i in range(12)]) * 12 / len(terms)
    np.testing.assert_allclose(shares, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(shares.mean(), reference.circle(labels, emb), rtol=1e-4)


@pytest.mark.parametrize(
    "labels", [[3, 3, 3, 3, 3], [0, 1, 2, 3, 4]], ids=["one-class", "all-distinct"]
)
def test_nothing_to_learn_gives_exactly_zero(labels, grad, rng):
    emb = unit(rng.normal(size=(5, 3)))
    value, g = grad(lambda x: CircleLoss()(np.array(labels), x), emb)
    assert float(value) == 0.0
    assert np.all(g == 0)


@pytest.mark.parametrize("kind", DEGENERATE_EMBEDDINGS)
def test_degenerate_embeddings_match_reference_with_finite_gradient(kind, grad):
    labels, emb = DEGENERATE_LABELS, DEGENERATE_EMBEDDINGS[kind]
    value, g = grad(lambda x: CircleLoss()(labels, x), emb)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    np.testing.assert_allclose(value, reference.circle(labels, emb), rtol=1e-4, atol=1e-5)


def test_large_gamma_is_finite(grad, rng):
    labels, emb = pk_batch(rng)
    value, g = grad(lambda x: CircleLoss(0.25, 1024.0)(labels, x), emb)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    np.testing.assert_allclose(value, reference.circle(labels, emb, 0.25, 1024.0), rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"margin": -0.1}, "margin=-0.1"),
        ({"gamma": 0.0}, "gamma=0.0"),
        ({"gamma": float("inf")}, "gamma=inf"),
        ({"margin": None}, "margin=None"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CircleLoss(**kwargs)


def test_registry_entry_builds_the_class():
    entry = losses.spec("circle")
    assert entry.task == "retrieval" and entry.output == "embedding"
    loss = entry.build({"gamma": 64.0})
    assert type(loss) is CircleLoss and loss.gamma == 64.0
