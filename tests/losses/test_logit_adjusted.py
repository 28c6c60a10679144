"""LogitAdjustedCrossentropy against the explicit loop, Keras's sparse CE and Balanced Softmax."""

import math

import keras
import numpy as np
import pytest
import reference
from batches import extreme_logits, logits_and_labels
from keras import ops

import losses
from losses import LogitAdjustedCrossentropy

C = 5


def random_priors(rng, classes=C):
    return list(rng.dirichlet(np.ones(classes)) * 0.9 + 0.1 / classes)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_matches_reference(tau, rng):
    for _ in range(2):
        logits, labels = logits_and_labels(rng, classes=C)
        priors = random_priors(rng)
        loss = LogitAdjustedCrossentropy(priors, tau=tau, reduction="none")
        want = reference.logit_adjusted(labels, logits, priors, tau)
        np.testing.assert_allclose(ops.convert_to_numpy(loss(labels, logits)), want, rtol=1e-5)


def test_from_labels_priors_are_class_shares_and_value_matches_reference(rng):
    train = np.array([0] * 50 + [1] * 30 + [2] * 15 + [3] * 4 + [4] * 1)
    rng.shuffle(train)
    loss = LogitAdjustedCrossentropy.from_labels(train, num_classes=5, tau=1.5)
    np.testing.assert_allclose(loss.class_priors, [0.5, 0.3, 0.15, 0.04, 0.01], rtol=1e-12)
    logits, labels = logits_and_labels(rng, classes=C)
    want = reference.logit_adjusted(labels, logits, loss.class_priors, 1.5).mean()
    np.testing.assert_allclose(float(loss(labels, logits)), want, rtol=1e-5)


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_uniform_priors_equal_keras_sparse_crossentropy(tau, rng):
    logits, labels = logits_and_labels(rng, classes=C, scale=10.0)
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    ours = LogitAdjustedCrossentropy([1.0 / C] * C, tau=tau)(labels, logits)
    np.testing.assert_allclose(float(ours), float(keras_ce), rtol=1e-5)


def test_tau_zero_equals_keras_sparse_crossentropy(rng):
    logits, labels = logits_and_labels(rng, classes=C)
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    ours = LogitAdjustedCrossentropy(random_priors(rng), tau=0.0)(labels, logits)
    np.testing.assert_allclose(float(ours), float(keras_ce), rtol=1e-6)


def test_tau_one_is_balanced_softmax(rng):
    # Ren et al.: p_y = n_y e^{z_y} / Σ_c n_c e^{z_c}, written out with counts, not priors.
    counts = [40, 20, 10, 5, 1]
    loss = LogitAdjustedCrossentropy.from_labels(reference.labels_from_counts(counts), tau=1.0)
    logits, labels = logits_and_labels(rng, classes=C)
    want = []
    for y, z in zip(labels, logits.astype(np.float64), strict=True):
        den = sum(n * math.exp(v) for n, v in zip(counts, z, strict=True))
        want.append(-math.log(counts[y] * math.exp(z[y]) / den))
    got = ops.convert_to_numpy(
        LogitAdjustedCrossentropy(loss.class_priors, reduction="none")(labels, logits)
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_hand_computed_value():
    # Equal logits: the adjusted softmax is the prior itself, loss = −τ·log π_y at τ = 1.
    loss = LogitAdjustedCrossentropy([0.75, 0.25], reduction="none")
    got = ops.convert_to_numpy(loss(np.array([0, 1]), np.zeros((2, 2), "float32")))
    np.testing.assert_allclose(got, [-math.log(0.75), -math.log(0.25)], rtol=1e-6)
    # τ = 2: softmax of [2 log .75, 2 log .25] → p_1 = 1/16 / (9/16 + 1/16) = 0.1.
    loss = LogitAdjustedCrossentropy([0.75, 0.25], tau=2.0)
    assert float(loss(np.array([1]), np.zeros((1, 2), "float32"))) == pytest.approx(
        math.log(10.0), rel=1e-6
    )


def test_probabilities_input_matches_logits(rng):
    logits, labels = logits_and_labels(rng, classes=C)
    loss = LogitAdjustedCrossentropy(random_priors(rng))
    base = float(loss(labels, logits))
    probs = ops.convert_to_numpy(ops.softmax(logits))
    from_probs = LogitAdjustedCrossentropy(loss.class_priors, from_logits=False)(labels, probs)
    np.testing.assert_allclose(float(from_probs), base, rtol=1e-4)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: LogitAdjustedCrossentropy([0.5, 0.0, 0.5]), r"class_priors\[1\]=0.0"),
        (lambda: LogitAdjustedCrossentropy([1.5, -0.5]), r"class_priors\[1\]=-0.5"),
        (lambda: LogitAdjustedCrossentropy([0.5, 0.4]), r"sum to 0.9"),
        (lambda: LogitAdjustedCrossentropy([0.5, 0.5 + 2e-6]), r"sum to 1.0000019"),
        (lambda: LogitAdjustedCrossentropy([0.5, float("nan")]), r"class_priors\[1\]=nan"),
        (lambda: LogitAdjustedCrossentropy([0.5, 0.5], tau=-1.0), "tau=-1.0"),
        (lambda: LogitAdjustedCrossentropy.from_labels([0, 0, 2]), r"Classes \[1\] have no"),
        (lambda: LogitAdjustedCrossentropy.from_labels([0, 1], num_classes=3), r"Classes \[2\]"),
        (lambda: LogitAdjustedCrossentropy.from_labels([0, 3], num_classes=2), "num_classes=2"),
        (lambda: LogitAdjustedCrossentropy.from_labels([0, -1]), "negative class id -1"),
    ],
)
def test_invalid_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_priors_within_tolerance_are_accepted():
    assert LogitAdjustedCrossentropy([0.5, 0.5 + 5e-7]).class_priors[1] == 0.5 + 5e-7


def test_wrong_number_of_priors(rng):
    logits, labels = logits_and_labels(rng, classes=C)
    with pytest.raises(ValueError, match="class_priors: got 2 values but y_pred has 5 classes"):
        LogitAdjustedCrossentropy([0.5, 0.5])(labels, logits)


@pytest.mark.parametrize("tau", [0.0, 1.0, 2.0])
def test_finite_value_and_gradient_at_extremes(tau, finite_per_sample):
    logits, labels = extreme_logits()
    loss = LogitAdjustedCrossentropy([0.9, 0.09, 0.01], tau=tau, reduction="none")
    per_sample = finite_per_sample(loss, labels, logits)
    # A confident mistake costs the adjusted gap, 2e4 + τ·log(π_1/π_0), not a clipped constant.
    assert per_sample[1] == pytest.approx(2e4 + tau * math.log(0.09 / 0.9), abs=1e-2)


def test_registry_builds_from_labels():
    train = [0, 0, 0, 1]
    loss = losses.get("logit_adjusted", labels=train, num_classes=2, tau=2.0)
    assert type(loss) is LogitAdjustedCrossentropy
    assert loss.class_priors == [0.75, 0.25] and loss.tau == 2.0
    entry = losses.spec("logit_adjusted")
    assert entry.needs == "labels" and entry.output == "logits"
    assert entry.search_space() == {"tau": ("float", 0.5, 2.0)}
    with pytest.raises(ValueError, match="tau=-1.0 is out of range"):
        losses.get("logit_adjusted", labels=train, tau=-1.0)
