"""CosFaceLoss against the explicit loop and hand-computed values."""

import math

import keras
import numpy as np
import pytest
import reference
from batches import cosines_and_labels
from keras import ops

from losses import CosFaceLoss, cosface_loss


@pytest.mark.parametrize("margin", [0.0, 0.1, 0.35, 0.8])
@pytest.mark.parametrize("scale", [1.0, 16.0, 64.0])
def test_matches_reference(margin, scale, rng):
    cosines, labels = cosines_and_labels(rng)
    got = ops.convert_to_numpy(CosFaceLoss(margin, scale, reduction="none")(labels, cosines))
    want = reference.cosface(labels, cosines, margin, scale)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_hand_computed_values():
    loss = CosFaceLoss(margin=0.35, scale=64.0, reduction="none")
    cosines = np.array([[0.0, 0.0], [1.0, -1.0], [-1.0, 1.0]], "float32")
    got = ops.convert_to_numpy(loss(np.array([0, 0, 0]), cosines))
    s, m = 64.0, 0.35
    want = [
        math.log1p(math.exp(-s * m)) + s * m,  # z = (−m, 0)
        math.log1p(math.exp(s * (-1.0 - (1.0 - m)))),  # z = (1 − m, −1)
        math.log1p(math.exp(-s * (1.0 - (-1.0 - m)))) + s * (1.0 - (-1.0 - m)),  # (−1 − m, 1)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_zero_margin_is_scaled_softmax_crossentropy(rng):
    cosines, labels = cosines_and_labels(rng)
    want = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, 16.0 * cosines)
    np.testing.assert_allclose(
        float(CosFaceLoss(0.0, 16.0)(labels, cosines)), float(want), rtol=1e-5
    )


def test_margin_raises_the_loss(rng):
    cosines, labels = cosines_and_labels(rng)
    values = [float(CosFaceLoss(m, 16.0)(labels, cosines)) for m in (0.0, 0.2, 0.4)]
    assert values[0] < values[1] < values[2]


def test_gradient_matches_finite_differences(grad, rng):
    cosines, labels = cosines_and_labels(rng, batch=6, classes=3)
    _, g = grad(lambda c: ops.sum(CosFaceLoss(0.35, 8.0, reduction="none")(labels, c)), cosines)
    want = reference.numeric_gradient(
        lambda c: float(np.sum(reference.cosface(labels, c, 0.35, 8.0))), cosines
    )
    np.testing.assert_allclose(g, want, rtol=1e-3, atol=1e-4)


def test_pure_function_equals_class(rng):
    cosines, labels = cosines_and_labels(rng)
    per_sample = ops.convert_to_numpy(CosFaceLoss(reduction="none")(labels, cosines))
    np.testing.assert_allclose(
        per_sample, ops.convert_to_numpy(cosface_loss(labels, cosines)), rtol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"margin": -0.1}, "margin=-0.1"),
        ({"scale": 0.0}, "scale=0.0"),
        ({"scale": -2.0}, "scale=-2.0"),
        ({"margin": float("nan")}, "margin=nan"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CosFaceLoss(**kwargs)
