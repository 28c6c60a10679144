"""ArcFaceLoss against the explicit loop, hand-computed values and at cosines of exactly ±1."""

import math

import keras
import numpy as np
import pytest
import reference
from batches import cosines_and_labels
from keras import ops

from losses import ArcFaceLoss, arcface_loss


# m = 1.0 and 2.0 put many true cosines below the threshold cos(π − m): the fallback branch.
@pytest.mark.parametrize("margin", [0.0, 0.2, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("scale", [1.0, 16.0, 64.0])
def test_matches_reference(margin, scale, rng):
    cosines, labels = cosines_and_labels(rng)
    got = ops.convert_to_numpy(ArcFaceLoss(margin, scale, reduction="none")(labels, cosines))
    want = reference.arcface(labels, cosines, margin, scale)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_hand_computed_values():
    loss = ArcFaceLoss(margin=0.5, scale=64.0, reduction="none")
    cosines = np.array([[0.0, 0.0], [1.0, -1.0], [-1.0, 0.0]], "float32")
    got = ops.convert_to_numpy(loss(np.array([0, 0, 0]), cosines))
    s, m = 64.0, 0.5
    # c = 0: θ = π/2, z_y = cos(π/2 + m) = −sin m.
    want0 = math.log1p(math.exp(-s * math.sin(m))) + s * math.sin(m)
    # c = 1: z_y = cos m; the other class at −1.
    want1 = math.log1p(math.exp(s * (-1.0 - math.cos(m))))
    # c = −1 <= cos(π − m): fallback z_y = −1 − m sin(π − m); the other class at 0.
    z_y = -1.0 - m * math.sin(math.pi - m)
    want2 = math.log1p(math.exp(-s * z_y))
    np.testing.assert_allclose(got, [want0, want1, want2], rtol=1e-5, atol=1e-6)


def test_zero_margin_is_scaled_softmax_crossentropy(rng):
    cosines, labels = cosines_and_labels(rng)
    want = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, 30.0 * cosines)
    np.testing.assert_allclose(
        float(ArcFaceLoss(0.0, 30.0)(labels, cosines)), float(want), rtol=1e-5
    )


@pytest.mark.parametrize("margin", [0.0, 0.5, 1.2])
def test_finite_gradient_at_cosines_of_exactly_plus_minus_one(margin, grad):
    # True-class cosines 1 and −1 (sqrt(1 − c²) = 0), a rounding overshoot 1 + 1e-7, and
    # a batch whose rows are identical (identical embeddings).
    cosines = np.array(
        [[1.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [1.0000001, 0.5, -1.0], [1.0, 1.0, 1.0]], "float32"
    )
    for labels in [np.array([0, 0, 0, 1]), np.array([2, 2, 2, 2])]:
        loss = ArcFaceLoss(margin, 64.0)
        value, g = grad(lambda c, labels=labels, loss=loss: loss(labels, c), cosines)
        assert np.isfinite(value) and np.all(np.isfinite(g)), (labels, value, g)
    same = np.tile(cosines[:1], (4, 1))
    value, g = grad(lambda c: ArcFaceLoss(margin)(np.zeros(4), c), same)
    assert np.isfinite(value) and np.all(np.isfinite(g))


@pytest.mark.parametrize("margin", [0.3, 1.0])
def test_gradient_matches_finite_differences(margin, grad, rng):
    # Interior cosines, away from the branch threshold, where the loss is smooth.
    cosines, labels = cosines_and_labels(rng, batch=6, classes=3)
    cosines = np.clip(cosines, -0.9, 0.9)
    threshold = math.cos(math.pi - margin)
    true = cosines[np.arange(6), labels]
    cosines[np.arange(6), labels] = np.where(np.abs(true - threshold) < 0.05, 0.5, true)
    _, g = grad(lambda c: ops.sum(ArcFaceLoss(margin, 8.0, reduction="none")(labels, c)), cosines)
    want = reference.numeric_gradient(
        lambda c: float(np.sum(reference.arcface(labels, c, margin, 8.0))), cosines
    )
    np.testing.assert_allclose(g, want, rtol=1e-3, atol=1e-4)


def test_pure_function_equals_class(rng):
    cosines, labels = cosines_and_labels(rng)
    np.testing.assert_allclose(
        ops.convert_to_numpy(arcface_loss(labels, cosines, 0.3, 32.0)),
        ops.convert_to_numpy(ArcFaceLoss(0.3, 32.0, reduction="none")(labels, cosines)),
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"margin": -0.1}, "margin=-0.1"),
        ({"margin": 3.2}, "margin=3.2"),
        ({"scale": 0.0}, "scale=0.0"),
        ({"scale": -1.0}, "scale=-1.0"),
        ({"scale": "big"}, "scale='big'"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ArcFaceLoss(**kwargs)
