"""TripletLoss against the explicit triplet loops, for every mining × distance × soft."""

import itertools

import keras
import numpy as np
import pytest
import reference
from keras import ops

from losses import TripletLoss, triplet_loss

MODES = list(
    itertools.product(
        ["semi-hard", "hard", "all"], ["euclidean", "squared", "cosine"], [False, True]
    )
)


def batch(rng, size=12, classes=3, dim=4):
    labels = rng.integers(0, classes, size=size)
    emb = rng.normal(size=(size, dim)).astype("float32")
    return labels, emb


@pytest.mark.parametrize("mining,kind,soft", MODES)
def test_matches_reference(mining, kind, soft, rng):
    # margin 0.5 on spread-out random embeddings leaves a mix of active and inactive terms.
    for _ in range(2):
        labels, emb = batch(rng)
        loss = TripletLoss(margin=0.5, mining=mining, distance=kind, soft=soft)
        want = reference.triplet(labels, emb, 0.5, mining, kind, soft)
        np.testing.assert_allclose(float(loss(labels, emb)), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mining,kind,soft", MODES)
def test_statistics_match_reference(mining, kind, soft, rng):
    labels, emb = batch(rng)
    stats = TripletLoss(0.5, mining, kind, soft).statistics(labels, emb)
    assert set(stats) == {"active_fraction", "mean_pos_distance", "mean_neg_distance"}
    want_active = reference.triplet_active_fraction(labels, emb, 0.5, mining, kind, soft)
    want_pos, want_neg = reference.mean_pair_distances(labels, emb, kind)
    got = {k: float(ops.convert_to_numpy(v)) for k, v in stats.items()}
    np.testing.assert_allclose(got["active_fraction"], want_active, atol=1e-6)
    np.testing.assert_allclose(got["mean_pos_distance"], want_pos, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["mean_neg_distance"], want_neg, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mining,soft", [("semi-hard", False), ("all", False), ("all", True)])
def test_gradient_matches_finite_differences(mining, soft, grad, rng):
    # "all" uses sorted prefix sums and, when soft, a hand-written gradient: check both.
    labels, emb = batch(rng, size=8, classes=2, dim=3)
    _, got = grad(lambda x: ops.mean(triplet_loss(labels, x, 0.5, mining, "euclidean", soft)), emb)
    want = reference.numeric_gradient(
        lambda x: reference.triplet(labels, x, 0.5, mining, "euclidean", soft), emb
    )
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def test_hand_computed_value():
    # Unit square, class 0 on the left column, class 1 on the right. Every anchor has its
    # positive at 1 and negatives at 1 and √2.
    emb = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], "float32")
    labels = np.array([0, 0, 1, 1])
    # hard: x = 1 − 1 = 0, hinge = margin.
    assert float(TripletLoss(0.2, "hard")(labels, emb)) == pytest.approx(0.2, abs=1e-6)
    # semi-hard: the negative must be strictly farther than 1, so √2: x = 1 − √2 < −0.2.
    assert float(TripletLoss(0.2, "semi-hard")(labels, emb)) == pytest.approx(0.0, abs=1e-6)
    # all: x = 0 (hinge 0.2) and x = 1 − √2 (hinge 0); the mean over non-zero ones is 0.2.
    assert float(TripletLoss(0.2, "all")(labels, emb)) == pytest.approx(0.2, abs=1e-6)
    # soft semi-hard: softplus(1 − √2) for every (a, p).
    want = np.log1p(np.exp(1 - np.sqrt(2)))
    assert float(TripletLoss(mining="semi-hard", soft=True)(labels, emb)) == pytest.approx(want)


@pytest.mark.parametrize("mining", ["semi-hard", "hard", "all"])
@pytest.mark.parametrize(
    "labels", [[3, 3, 3, 3, 3], [0, 1, 2, 3, 4]], ids=["one-class", "no-positive"]
)
def test_no_valid_triplet_gives_zero_and_finite_gradient(mining, labels, grad, rng):
    emb = rng.normal(size=(5, 3)).astype("float32")
    for soft in [False, True]:
        loss = TripletLoss(mining=mining, soft=soft)
        value, g = grad(lambda x, loss=loss: loss(np.array(labels), x), emb)
        assert float(value) == 0.0
        assert np.all(g == 0)
        stats = TripletLoss(mining=mining, soft=soft).statistics(np.array(labels), emb)
        assert float(ops.convert_to_numpy(stats["active_fraction"])) == 0.0


def test_reduction_none_gives_per_anchor_shares_averaging_to_the_loss(rng):
    labels, emb = batch(rng)
    shares = ops.convert_to_numpy(TripletLoss(reduction="none")(labels, emb))
    assert shares.shape == (12,)
    np.testing.assert_allclose(shares.mean(), reference.triplet(labels, emb), rtol=1e-4)


def test_sample_weight_weights_anchor_shares(rng):
    labels, emb = batch(rng)
    shares = ops.convert_to_numpy(TripletLoss(reduction="none")(labels, emb))
    weights = rng.uniform(size=12).astype("float32")
    got = float(TripletLoss()(labels, emb, sample_weight=weights))
    np.testing.assert_allclose(got, np.sum(shares * weights) / 12, rtol=1e-5)


def test_labels_as_column(rng):
    labels, emb = batch(rng)
    loss = TripletLoss()
    np.testing.assert_allclose(float(loss(labels[:, None], emb)), float(loss(labels, emb)))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"margin": -0.1}, "margin=-0.1"),
        ({"mining": "easy"}, "mining='easy'.*'semi-hard', 'hard', 'all'"),
        ({"distance": "l1"}, "distance='l1'.*'cosine'"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TripletLoss(**kwargs)


def test_semi_hard_memory_is_quadratic_not_cubic():
    # B = 1024 would need 4 GB for one float32 B³ tensor; the O(B²) version runs at once.
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 64, size=1024)
    emb = rng.normal(size=(1024, 8)).astype("float32")
    value = float(TripletLoss()(labels, keras.ops.convert_to_tensor(emb)))
    assert np.isfinite(value) and value > 0
