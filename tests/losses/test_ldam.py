"""LDAMLoss and drw_weights against the explicit loops, Keras's sparse CE and hand values."""

import inspect
import math

import keras
import numpy as np
import pytest
import reference
from batches import cosines_and_labels, extreme_logits
from keras import ops

import losses
from losses import LDAMLoss, drw_weights, ldam_margins

COUNTS = [500, 120, 40, 9, 2]
C = len(COUNTS)


@pytest.mark.parametrize("max_margin", [0.0, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("scale", [1.0, 10.0, 30.0])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_matches_reference(max_margin, scale, weighted, rng):
    cosines, labels = cosines_and_labels(rng)
    weights = list(rng.uniform(0.1, 3.0, size=C)) if weighted else None
    loss = LDAMLoss(COUNTS, max_margin, scale, class_weights=weights, reduction="none")
    want = reference.ldam(labels, cosines, COUNTS, max_margin, scale, weights)
    # atol: float32 logits s·z carry an absolute rounding of ~1e-7·s, seen in losses near 0.
    got = ops.convert_to_numpy(loss(labels, cosines))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale)


def test_margins_are_hand_computed():
    # n^(−1/4): 81 → 1/3, 1 → 1, 16 → 1/2; the rarest class gets max_margin.
    np.testing.assert_allclose(ldam_margins([81, 1, 16], 0.6), [0.2, 0.6, 0.3], rtol=1e-12)
    np.testing.assert_allclose(ldam_margins([16, 1], 0.5), [0.25, 0.5], rtol=1e-12)
    np.testing.assert_allclose(LDAMLoss(COUNTS).margins, reference.ldam_margins(COUNTS, 0.5))


def test_hand_computed_value():
    # Equal counts: both margins are max_margin. s = 1, z = (0, 0), y = 0:
    # logits (−0.5, 0) → loss = log(1 + e^{0.5}).
    loss = LDAMLoss([3, 3], max_margin=0.5, scale=1.0)
    got = float(loss(np.array([0]), np.zeros((1, 2), "float32")))
    assert got == pytest.approx(math.log1p(math.exp(0.5)), rel=1e-6)
    # A weight multiplies it.
    loss = LDAMLoss([3, 3], max_margin=0.5, scale=1.0, class_weights=[2.0, 1.0])
    assert float(loss(np.array([0]), np.zeros((1, 2), "float32"))) == pytest.approx(
        2 * math.log1p(math.exp(0.5)), rel=1e-6
    )


def test_zero_margin_equals_keras_sparse_crossentropy_of_scaled_cosines(rng):
    cosines, labels = cosines_and_labels(rng)
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, 30 * cosines)
    ours = LDAMLoss(COUNTS, max_margin=0.0, scale=30.0)(labels, cosines)
    np.testing.assert_allclose(float(ours), float(keras_ce), rtol=1e-5)


def test_margin_raises_the_loss_of_the_rare_class_most(rng):
    cosines = np.zeros((C, C), "float32")
    labels = np.arange(C)
    per_sample = ops.convert_to_numpy(LDAMLoss(COUNTS, reduction="none")(labels, cosines))
    assert np.all(np.diff(per_sample) > 0)  # classes ordered from head to tail


@pytest.mark.parametrize("beta", [0.0, 0.9, 0.999, 0.9999])
def test_drw_weights_match_reference(beta):
    got = drw_weights(COUNTS, beta)
    want = reference.class_weights(reference.labels_from_counts(COUNTS), C, beta)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # The same numbers as balanced CE's weights from the labels those counts describe.
    labels = reference.labels_from_counts(COUNTS)
    assert got == losses.weights_from_labels(labels, C, beta)
    # Normalised like weights_from_labels: Σ_c (n_c/N)·w_c = 1.
    shares = np.array(COUNTS) / sum(COUNTS)
    assert np.sum(shares * np.array(got)) == pytest.approx(1.0)


def test_drw_weights_are_cui_et_al_up_to_the_normalisation():
    # The authors' code: (1 − β)/(1 − β^n), rescaled to sum to C. Same ratios.
    beta = 0.9999
    raw = [(1 - beta) / (1 - beta**n) for n in COUNTS]
    authors = [w / sum(raw) * C for w in raw]
    ratio = np.array(drw_weights(COUNTS, beta)) / np.array(authors)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)
    assert drw_weights([3, 1], beta=0.0) == pytest.approx([1.0, 1.0])


def test_drw_weighted_loss_matches_reference(rng):
    cosines, labels = cosines_and_labels(rng)
    weights = drw_weights(COUNTS)
    loss = LDAMLoss(COUNTS, class_weights=weights)
    want = reference.ldam(labels, cosines, COUNTS, 0.5, 30.0, weights).mean()
    np.testing.assert_allclose(float(loss(labels, cosines)), want, rtol=1e-5)


def test_from_labels_counts_and_value(rng):
    train = np.array(reference.labels_from_counts(COUNTS))
    rng.shuffle(train)
    loss = LDAMLoss.from_labels(train, num_classes=C, max_margin=0.3, scale=16.0)
    assert loss.class_counts == COUNTS and loss.max_margin == 0.3 and loss.scale == 16.0
    cosines, labels = cosines_and_labels(rng)
    want = reference.ldam(labels, cosines, COUNTS, 0.3, 16.0).mean()
    np.testing.assert_allclose(float(loss(labels, cosines)), want, rtol=1e-5)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: LDAMLoss([5, 0, 2]), r"class_counts\[1\]=0.0"),
        (lambda: LDAMLoss([5, -3]), r"class_counts\[1\]=-3.0"),
        (lambda: LDAMLoss([5, 2.5]), r"class_counts\[1\]=2.5"),
        (lambda: LDAMLoss([5, float("inf")]), r"class_counts\[1\]=inf"),
        (lambda: LDAMLoss([]), "non-empty"),
        (lambda: LDAMLoss([5, 2], max_margin=-0.1), "max_margin=-0.1"),
        (lambda: LDAMLoss([5, 2], scale=0.0), "scale=0.0"),
        (lambda: LDAMLoss([5, 2], scale=-30), "scale=-30"),
        (lambda: LDAMLoss([5, 2], scale=float("nan")), "scale=nan"),
        (lambda: LDAMLoss([5, 2], class_weights=[1.0, -1.0]), r"class_weights\[1\]=-1.0"),
        (lambda: LDAMLoss([5, 2], class_weights=[1.0]), "class_weights: got 1 values"),
        (lambda: LDAMLoss.from_labels([0, 0, 2]), r"Classes \[1\] have no examples"),
        (lambda: LDAMLoss.from_labels([0, 1], num_classes=3), r"Classes \[2\]"),
        (lambda: LDAMLoss.from_labels([0.5, 1]), "integer class ids"),
        (lambda: drw_weights([5, 0]), r"class_counts\[1\]=0.0"),
        (lambda: drw_weights([5, 2], beta=1.0), "beta=1.0"),
    ],
)
def test_invalid_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_wrong_number_of_classes(rng):
    cosines, labels = cosines_and_labels(rng)
    with pytest.raises(ValueError, match="class_counts: got 2 values but y_pred has 5 classes"):
        LDAMLoss([5, 2])(labels, cosines)


@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0]], ids=["unweighted", "weighted"])
def test_finite_value_and_gradient_at_extremes(weights, finite_per_sample):
    # Far outside the cosine range, and scaled by 30: logits up to 3e5.
    logits, labels = extreme_logits()
    loss = LDAMLoss([100, 10, 1], class_weights=weights, reduction="none")
    per_sample = finite_per_sample(loss, labels, logits)
    margin = loss.margins[0]
    w = 1.0 if weights is None else weights[0]
    assert per_sample[1] == pytest.approx(w * 30 * (2e4 + margin), rel=1e-5)


def test_config_round_trip_with_drw_weights():
    # The registry entries start unweighted (test_common.py); the DRW phase adds the weights.
    loss = LDAMLoss([3, 1], 0.3, 16.0, class_weights=drw_weights([3, 1]))
    config = loss.get_config()
    init_args = set(inspect.signature(LDAMLoss.__init__).parameters) - {"self"}
    assert set(config) - {"dtype"} == init_args - {"dtype"}
    clone = LDAMLoss.from_config(config)
    assert clone.get_config() == config and clone.margins == loss.margins
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is LDAMLoss and restored.get_config() == config


def test_registry_builds_from_labels():
    train = reference.labels_from_counts([6, 3, 1])
    loss = losses.get("ldam", labels=train, num_classes=3, max_margin=0.4, scale=20.0)
    assert type(loss) is LDAMLoss
    assert (loss.class_counts, loss.max_margin, loss.scale) == ([6, 3, 1], 0.4, 20.0)
    assert loss.class_weights is None
    entry = losses.spec("ldam")
    assert (entry.needs, entry.output, entry.trainer_args) == ("labels", "cosine_logits", ("drw",))
    assert set(entry.search_space()) == {"max_margin", "scale"}
    # The trainer-only argument is not passed to the loss.
    assert type(entry.build({"drw": True}, labels=train, num_classes=3)) is LDAMLoss
    with pytest.raises(ValueError, match="scale=0.0 is out of range"):
        losses.get("ldam", labels=train, scale=0.0)


def test_registry_ldam_drw_preset():
    entry = losses.spec("ldam_drw")
    assert entry.preset_of == "ldam" and dict(entry.fixed) == {"drw": True}
    assert entry.output == "cosine_logits" and "drw" not in entry.arg_names


def test_registry_get_ldam_drw_builds_the_unweighted_loss():
    # drw is the trainer's: the loss starts unweighted, the trainer switches class_weights.
    loss = losses.get("ldam_drw", labels=[0, 0, 1], num_classes=2)
    assert type(loss) is LDAMLoss and loss.class_weights is None
    assert losses.spec("ldam_drw").settings({})["drw"] is True
