"""BalancedCrossentropy against the explicit loop, Keras's sparse CE, and its weight rules."""

import keras
import numpy as np
import pytest
import reference
from batches import logits_and_labels
from keras import ops

from losses import BalancedCrossentropy, weights_from_labels


def test_matches_reference(rng):
    logits, labels = logits_and_labels(rng, classes=5)
    weights = rng.uniform(0.1, 3.0, size=5)
    got = ops.convert_to_numpy(BalancedCrossentropy(weights, reduction="none")(labels, logits))
    np.testing.assert_allclose(
        got, reference.balanced_crossentropy(labels, logits, weights), rtol=1e-5
    )


def test_unit_weights_equal_keras_sparse_crossentropy(rng):
    logits, labels = logits_and_labels(rng, classes=5)
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    ours = BalancedCrossentropy([1.0] * 5)(labels, logits)
    np.testing.assert_allclose(float(ours), float(keras_ce), rtol=1e-6)


def test_probabilities_input_matches_logits(rng):
    logits, labels = logits_and_labels(rng, classes=5)
    loss = BalancedCrossentropy([0.5, 1.0, 2.0, 1.0, 0.1])
    base = float(loss(labels, logits))
    probs = ops.convert_to_numpy(ops.softmax(logits))
    from_probs = BalancedCrossentropy(loss.class_weights, from_logits=False)(labels, probs)
    np.testing.assert_allclose(float(from_probs), base, rtol=1e-4)


@pytest.mark.parametrize("beta", [None, 0.0, 0.9, 0.999])
def test_from_labels_weights_match_reference(beta):
    labels = np.array([0] * 50 + [1] * 20 + [2] * 5 + [3] * 1)
    got = BalancedCrossentropy.from_labels(labels, beta=beta).class_weights
    np.testing.assert_allclose(got, reference.class_weights(labels, 4, beta), rtol=1e-12)
    # Normalisation: the weighted mean over the training distribution is 1.
    counts = np.bincount(labels)
    assert np.sum(counts / counts.sum() * np.array(got)) == pytest.approx(1.0)


def test_from_labels_value_matches_reference(rng):
    train = rng.integers(0, 5, size=200)
    logits, labels = logits_and_labels(rng, classes=5)
    loss = BalancedCrossentropy.from_labels(train, num_classes=5, beta=0.99)
    want = reference.balanced_crossentropy(labels, logits, reference.class_weights(train, 5, 0.99))
    np.testing.assert_allclose(float(loss(labels, logits)), want.mean(), rtol=1e-5)


def test_beta_zero_is_uniform_and_inverse_frequency_is_hand_computed():
    assert weights_from_labels([0, 0, 0, 1], beta=0.0) == pytest.approx([1.0, 1.0])
    # n = (3, 1): raw (1/3, 1), scale 3/4·1/3 + 1/4·1 = 1/2 → (2/3, 2).
    assert weights_from_labels([0, 0, 0, 1]) == pytest.approx([2 / 3, 2.0])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: BalancedCrossentropy.from_labels([0, 0, 2]), r"Classes \[1\] have no examples"),
        (lambda: BalancedCrossentropy.from_labels([0, 1], num_classes=3), r"Classes \[2\]"),
        (lambda: BalancedCrossentropy.from_labels([0, 1], beta=1.0), "beta=1.0"),
        (lambda: BalancedCrossentropy([1.0, -1.0]), r"class_weights\[1\]=-1.0"),
        (lambda: BalancedCrossentropy([1.0, float("nan")]), r"class_weights\[1\]=nan"),
        (lambda: BalancedCrossentropy([]), "non-empty"),
    ],
)
def test_invalid_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_wrong_number_of_weights(rng):
    logits, labels = logits_and_labels(rng, classes=5)
    with pytest.raises(ValueError, match="got 3 values but y_pred has 5 classes"):
        BalancedCrossentropy([1.0, 1.0, 1.0])(labels, logits)
