"""FocalLoss against the explicit loop and against Keras's own losses."""

import keras
import numpy as np
import pytest
import reference
from batches import logits_and_labels
from keras import ops

from losses import FocalLoss


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize(
    "alpha", [None, 0.25, [0.1, 0.4, 1.0, 2.0]], ids=["none", "scalar", "per-class"]
)
def test_matches_reference(gamma, alpha, rng):
    logits, labels = logits_and_labels(rng)
    got = ops.convert_to_numpy(FocalLoss(gamma, alpha, reduction="none")(labels, logits))
    want = reference.focal(labels, logits, gamma, alpha)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


def test_gamma_zero_equals_keras_sparse_crossentropy(rng):
    logits, labels = logits_and_labels(rng, scale=10.0)
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(
        float(FocalLoss(gamma=0.0)(labels, logits)), float(keras_ce), rtol=1e-5
    )


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_one_hot_per_class_alpha_equals_keras_categorical_focal(gamma, rng):
    # Keras clips p to [1e-7, 1 − 1e-7]: the definitions agree at moderate logits.
    logits, labels = logits_and_labels(rng, scale=2.0)
    alpha = [0.25, 0.5, 1.0, 2.0]
    one_hot = np.eye(4, dtype="float32")[labels]
    keras_loss = keras.losses.CategoricalFocalCrossentropy(
        alpha=alpha, gamma=gamma, from_logits=True
    )
    want = float(keras_loss(one_hot, logits))
    np.testing.assert_allclose(float(FocalLoss(gamma, alpha)(one_hot, logits)), want, rtol=1e-5)


def test_probabilities_input_matches_logits(rng):
    logits, labels = logits_and_labels(rng)
    probs = ops.convert_to_numpy(ops.softmax(logits))
    a = float(FocalLoss(2.0, from_logits=False)(labels, probs))
    np.testing.assert_allclose(a, float(FocalLoss(2.0)(labels, logits)), rtol=1e-4)


def test_hand_computed_value():
    # Two equal logits: p_y = 1/2, loss = (1/2)² · log 2 · α.
    loss = FocalLoss(gamma=2.0, alpha=[3.0, 1.0])
    assert float(loss(np.array([0]), np.zeros((1, 2), "float32"))) == pytest.approx(
        0.75 * np.log(2)
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"gamma": -1.0}, "gamma=-1.0"),
        ({"alpha": -0.5}, "alpha=-0.5"),
        ({"alpha": [1.0, -2.0]}, r"alpha\[1\]=-2.0"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FocalLoss(**kwargs)


def test_wrong_alpha_length(rng):
    logits, labels = logits_and_labels(rng)
    with pytest.raises(ValueError, match="alpha: got 2 values but y_pred has 4 classes"):
        FocalLoss(alpha=[1.0, 2.0])(labels, logits)
