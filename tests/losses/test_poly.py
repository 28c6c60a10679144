"""PolyLoss (Poly-1) against the explicit loop, Keras's sparse CE and its analytic gradient."""

import math

import keras
import numpy as np
import pytest
import reference
from batches import extreme_logits, logits_and_labels
from keras import ops

import losses
from losses import PolyLoss

EPSILONS = [-1.0, -0.5, 0.0, 1.0, 2.0, 5.0]


@pytest.mark.parametrize("epsilon", EPSILONS)
def test_matches_reference(epsilon, rng):
    for _ in range(2):
        logits, labels = logits_and_labels(rng)
        got = ops.convert_to_numpy(PolyLoss(epsilon, reduction="none")(labels, logits))
        want = reference.poly1(labels, logits, epsilon)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_epsilon_zero_equals_keras_sparse_crossentropy(rng):
    logits, labels = logits_and_labels(rng, scale=10.0)
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(float(PolyLoss(0.0)(labels, logits)), float(keras_ce), rtol=1e-6)


@pytest.mark.parametrize("epsilon", [-1.0, 1.0, 3.0])
def test_is_keras_sparse_crossentropy_plus_epsilon_times_one_minus_p(epsilon, rng):
    logits, labels = logits_and_labels(rng)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")(
        labels, logits
    )
    p = np.take_along_axis(ops.convert_to_numpy(ops.softmax(logits)), labels[:, None], 1)[:, 0]
    want = ops.convert_to_numpy(ce) + epsilon * (1.0 - p)
    got = ops.convert_to_numpy(PolyLoss(epsilon, reduction="none")(labels, logits))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_hand_computed_value():
    # Two equal logits: p_y = 1/2, loss = log 2 + ε/2.
    zeros = np.zeros((1, 2), "float32")
    for epsilon in [1.0, -1.0, 4.0]:
        got = float(PolyLoss(epsilon)(np.array([0]), zeros))
        assert got == pytest.approx(math.log(2) + epsilon / 2, rel=1e-6)


@pytest.mark.parametrize("epsilon", [-1.0, 0.0, 2.0])
def test_gradient_is_analytic(epsilon, rng, grad):
    # d/dz_c = (p_c − [c = y]) · (1 + ε·p_y): CE's gradient scaled by 1 + ε·p_y.
    logits, labels = logits_and_labels(rng, batch=6)
    _, g = grad(lambda z: ops.sum(PolyLoss(epsilon, reduction="none")(labels, z)), logits)
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p_y = p[np.arange(6), labels]
    want = (p - np.eye(4)[labels]) * (1 + epsilon * p_y)[:, None]
    np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-6)


def test_probabilities_input_matches_logits(rng):
    logits, labels = logits_and_labels(rng)
    base = float(PolyLoss(2.0)(labels, logits))
    probs = ops.convert_to_numpy(ops.softmax(logits))
    np.testing.assert_allclose(
        float(PolyLoss(2.0, from_logits=False)(labels, probs)), base, rtol=1e-4
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "one", None])
def test_invalid_epsilon(bad):
    with pytest.raises(ValueError, match=f"epsilon={bad!r}"):
        PolyLoss(bad)


@pytest.mark.parametrize("epsilon", EPSILONS)
def test_finite_value_and_gradient_at_extremes(epsilon, finite_per_sample):
    logits, labels = extreme_logits()
    loss = PolyLoss(epsilon, reduction="none")
    per_sample = finite_per_sample(loss, labels, logits)
    assert per_sample[0] == pytest.approx(0.0, abs=1e-6)  # p_y = 1
    assert per_sample[1] == pytest.approx(2e4 + epsilon, rel=1e-6)  # p_y = 0
    assert per_sample[2] == pytest.approx(math.log(3) + epsilon * 2 / 3, rel=1e-5)


def test_registry():
    loss = losses.get("poly", epsilon=-0.5)
    assert type(loss) is PolyLoss and loss.epsilon == -0.5
    entry = losses.spec("poly")
    assert entry.needs is None and entry.output == "logits"
    assert entry.search_space() == {"epsilon": ("float", -1.0, 5.0)}
    assert type(entry.build({"epsilon": 3.0})) is PolyLoss
    # The registry keeps configs at ε >= −1, where the loss still falls as p_y → 1.
    with pytest.raises(ValueError, match="epsilon=-2.0 is out of range"):
        entry.build({"epsilon": -2.0})
