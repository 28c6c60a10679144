"""Crossentropy (`ce`) and its label smoothing against Keras's own categorical cross entropy on
one-hot labels and the explicit loop (runs under TensorFlow, JAX and PyTorch)."""

import keras
import numpy as np
import pytest
import reference
from batches import logits_and_labels
from keras import ops

import losses
from losses import Crossentropy

SMOOTHINGS = [0.0, 0.05, 0.1, 0.3]


@pytest.mark.parametrize("epsilon", SMOOTHINGS)
def test_matches_keras_categorical_crossentropy_with_one_hot_smoothing(epsilon, rng):
    logits, labels = logits_and_labels(rng, batch=32, classes=7, scale=4.0)
    one_hot = np.eye(7, dtype="float32")[labels]
    keras_ce = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=epsilon)
    want = float(ops.convert_to_numpy(keras_ce(one_hot, logits)))
    got = float(ops.convert_to_numpy(Crossentropy(label_smoothing=epsilon)(labels, logits)))
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("epsilon", SMOOTHINGS)
def test_matches_the_loop(epsilon, rng):
    logits, labels = logits_and_labels(rng)
    got = ops.convert_to_numpy(Crossentropy(label_smoothing=epsilon, reduction="none")(
        labels, logits))
    np.testing.assert_allclose(got, reference.smoothed_crossentropy(labels, logits, epsilon),
                               rtol=1e-5, atol=1e-6)


def test_hand_computed_value():
    # Two classes, equal logits: p = (½, ½), so −Σ q log p = log 2 for any ε.
    # Logits (log 3, 0): p = (¾, ¼); y = 0, ε = 0.2: q = (0.9, 0.1).
    logits = np.array([[0.0, 0.0], [np.log(3.0), 0.0]], "float32")
    got = ops.convert_to_numpy(Crossentropy(label_smoothing=0.2, reduction="none")(
        np.array([1, 0]), logits))
    want = [np.log(2.0), -(0.9 * np.log(0.75) + 0.1 * np.log(0.25))]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_probabilities_and_label_layouts_agree(rng):
    logits, labels = logits_and_labels(rng, classes=5)
    loss = Crossentropy(label_smoothing=0.1)
    from_logits = float(loss(labels, logits))
    probs = ops.softmax(ops.convert_to_tensor(logits))
    from_probs = float(Crossentropy(from_logits=False, label_smoothing=0.1)(labels, probs))
    one_hot = float(loss(np.eye(5, dtype="float32")[labels], logits))
    column = float(loss(labels[:, None], logits))
    np.testing.assert_allclose([from_probs, one_hot, column], from_logits, rtol=1e-5)


def test_registry_builds_it_with_the_argument():
    loss = losses.spec("ce").build({"label_smoothing": 0.1})
    assert isinstance(loss, Crossentropy) and loss.label_smoothing == 0.1
    assert losses.spec("ce").build({}).label_smoothing == 0.0
    assert Crossentropy.from_config(loss.get_config()).label_smoothing == 0.1


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match="label_smoothing"):
        Crossentropy(label_smoothing=bad)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.spec("ce").build({"label_smoothing": bad})


def test_ignore_class_needs_no_smoothing():
    with pytest.raises(ValueError, match="ignore_class"):
        Crossentropy(ignore_class=0, label_smoothing=0.1)
