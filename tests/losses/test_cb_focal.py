"""Class-balanced focal loss (`FocalLoss.from_labels`): Cui et al. weights as per-class alpha."""

import keras
import numpy as np
import pytest
import reference
from batches import extreme_logits, logits_and_labels
from keras import ops

import losses
from losses import BalancedCrossentropy, FocalLoss

COUNTS = [60, 25, 10, 4, 1]
C = len(COUNTS)
TRAIN = reference.labels_from_counts(COUNTS)


@pytest.mark.parametrize("beta", [0.0, 0.9, 0.99, 0.999, 0.9999])
def test_alpha_is_cui_et_al_weights_normalised_like_balanced_ce(beta):
    alpha = FocalLoss.from_labels(TRAIN, beta=beta).alpha
    np.testing.assert_allclose(alpha, reference.class_weights(TRAIN, C, beta), rtol=1e-12)
    assert alpha == losses.weights_from_labels(TRAIN, C, beta)
    shares = np.array(COUNTS) / sum(COUNTS)
    assert np.sum(shares * np.array(alpha)) == pytest.approx(1.0)


@pytest.mark.parametrize("beta", [0.9, 0.9999])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_matches_reference(beta, gamma, rng):
    logits, labels = logits_and_labels(rng, classes=C)
    loss = FocalLoss.from_labels(TRAIN, beta=beta, gamma=gamma, reduction="none")
    want = reference.focal(labels, logits, gamma, reference.class_weights(TRAIN, C, beta))
    np.testing.assert_allclose(
        ops.convert_to_numpy(loss(labels, logits)), want, rtol=1e-4, atol=1e-7
    )


def test_beta_limits():
    # β = 0: every α_c = 1 (plain focal); β → 1: inverse frequency, balanced CE's beta=None.
    assert FocalLoss.from_labels(TRAIN, beta=0.0).alpha == pytest.approx([1.0] * C)
    np.testing.assert_allclose(
        FocalLoss.from_labels(TRAIN, beta=1 - 1e-9).alpha,
        losses.weights_from_labels(TRAIN),
        rtol=1e-6,
    )
    # Between them, the weights are ordered by rarity.
    assert np.all(np.diff(FocalLoss.from_labels(TRAIN, beta=0.99).alpha) > 0)


def test_gamma_zero_equals_balanced_crossentropy_and_keras(rng):
    logits, labels = logits_and_labels(rng, classes=C)
    ours = float(FocalLoss.from_labels(TRAIN, beta=0.999, gamma=0.0)(labels, logits))
    balanced = BalancedCrossentropy.from_labels(TRAIN, beta=0.999)(labels, logits)
    np.testing.assert_allclose(ours, float(balanced), rtol=1e-5)
    plain = float(FocalLoss.from_labels(TRAIN, beta=0.0, gamma=0.0)(labels, logits))
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(plain, float(keras_ce), rtol=1e-5)


def test_hand_computed_value():
    # n = (3, 1), β = 0.5: raw (0.5/0.875, 1) = (4/7, 1); Σ (n/N)·raw = 3/7 + 1/4 = 19/28;
    # α = (16/19, 28/19). Equal logits, y = 1: (1/2)² · log 2 · 28/19.
    loss = FocalLoss.from_labels([0, 0, 0, 1], beta=0.5)
    np.testing.assert_allclose(loss.alpha, [16 / 19, 28 / 19], rtol=1e-12)
    got = float(loss(np.array([1]), np.zeros((1, 2), "float32")))
    assert got == pytest.approx(0.25 * np.log(2) * 28 / 19, rel=1e-6)


def test_plain_focal_is_unchanged(rng):
    loss = FocalLoss()
    assert (loss.gamma, loss.alpha, loss.from_logits) == (2.0, None, True)
    logits, labels = logits_and_labels(rng, classes=C)
    np.testing.assert_allclose(
        ops.convert_to_numpy(FocalLoss(reduction="none")(labels, logits)),
        reference.focal(labels, logits, 2.0),
        rtol=1e-4,
        atol=1e-7,
    )


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: FocalLoss.from_labels([0, 0, 2]), r"Classes \[1\] have no examples"),
        (lambda: FocalLoss.from_labels([0, 1], num_classes=3), r"Classes \[2\]"),
        (lambda: FocalLoss.from_labels([0, 1], beta=1.0), "beta=1.0"),
        (lambda: FocalLoss.from_labels([0, 1], beta=-0.1), "beta=-0.1"),
        (lambda: FocalLoss.from_labels([0, 1], gamma=-1.0), "gamma=-1.0"),
    ],
)
def test_invalid_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_wrong_number_of_classes(rng):
    logits, labels = logits_and_labels(rng, classes=C)
    with pytest.raises(ValueError, match="alpha: got 2 values but y_pred has 5 classes"):
        FocalLoss.from_labels([0, 1])(labels, logits)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_finite_value_and_gradient_at_extremes(gamma, finite_per_sample):
    logits, labels = extreme_logits()
    loss = FocalLoss.from_labels([0] * 50 + [1] * 5 + [2], gamma=gamma, reduction="none")
    per_sample = finite_per_sample(loss, labels, logits)
    assert per_sample[1] == pytest.approx(loss.alpha[0] * 2e4, rel=1e-5)


def test_registry_builds_from_labels():
    loss = losses.get("cb_focal", labels=TRAIN, num_classes=C, beta=0.99, gamma=1.0)
    assert type(loss) is FocalLoss and loss.gamma == 1.0
    assert loss.alpha == losses.weights_from_labels(TRAIN, C, 0.99)
    entry = losses.spec("cb_focal")
    assert entry.needs == "labels" and entry.arg_names == ("beta", "gamma")
    assert entry.cls is FocalLoss
    default = entry.build(labels=TRAIN, num_classes=C)
    assert default.gamma == 2.0 and default.alpha == losses.weights_from_labels(TRAIN, C, 0.9999)
    with pytest.raises(ValueError, match="beta=1.0 is out of range"):
        losses.get("cb_focal", labels=TRAIN, beta=1.0)
