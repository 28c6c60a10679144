"""Finite values and gradients at the extremes of each mode (every loss's degenerate batch and
low-precision inputs: test_common.py)."""

import itertools

import numpy as np
import pytest
from batches import extreme_logits, unit

import losses

GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [None, [0.5, 1.0, 2.0]], ids=["none", "per-class"])
def test_focal_finite_at_extremes(gamma, alpha, finite_per_sample):
    logits, labels = extreme_logits()
    loss = losses.FocalLoss(gamma, alpha, reduction="none")
    per_sample = finite_per_sample(loss, labels, logits)
    assert per_sample[0] == pytest.approx(0.0, abs=1e-6)  # p_y = 1
    # A confident mistake costs α·(logit gap) instead of Keras's clipped ~16.1.
    assert per_sample[1] == pytest.approx((alpha or [1.0])[0] * 2e4, rel=1e-5)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_focal_gradient_near_certainty_is_finite_and_small(gamma, grad):
    # p_y = 1 − ε for ε from 1e-3 down to 1e-30: for γ < 1 the naive (1 − p)^γ has an
    # unbounded slope here; in log-space the gradient stays finite and shrinks with ε.
    for gap in [7.0, 20.0, 70.0]:
        logits = np.array([[gap, 0.0]], "float32")
        value, g = grad(lambda z: losses.FocalLoss(gamma)(np.array([0]), z), logits)
        assert np.isfinite(value) and np.all(np.isfinite(g))
        assert np.all(np.abs(g) <= 1e-2)


@pytest.mark.parametrize(
    "loss", [losses.Crossentropy(), losses.BalancedCrossentropy([1.0, 2.0, 3.0])],
    ids=["ce", "balanced_ce"],  # stable ids: pytest-xdist workers must collect the same names
)
def test_crossentropies_finite_at_extremes(loss, grad):
    logits, labels = extreme_logits()
    value, g = grad(lambda z: loss(labels, z), logits)
    assert np.isfinite(value) and np.all(np.isfinite(g))


METRIC = [
    losses.TripletLoss(mining=m, distance=d, soft=s)
    for m, d, s in itertools.product(
        ["semi-hard", "hard", "all"], ["euclidean", "squared", "cosine"], [False, True]
    )
] + [losses.ContrastiveLoss(distance=d) for d in ["euclidean", "squared", "cosine"]]


@pytest.mark.parametrize("loss", METRIC, ids=lambda loss: str(loss.get_config()))
def test_metric_losses_finite_on_identical_and_zero_embeddings(loss, grad):
    labels = np.array([0, 0, 1, 1, 2])
    for emb in [np.ones((5, 3), "float32"), np.zeros((5, 3), "float32")]:
        value, g = grad(lambda x: loss(labels, x), emb)
        assert np.isfinite(value) and np.all(np.isfinite(g)), (emb[0], value, g)


@pytest.mark.parametrize(
    "loss",
    [losses.CircleLoss(), losses.SupConLoss(), losses.MultiSimilarityLoss()],
    ids=lambda loss: loss.name,
)
def test_pair_losses_memory_is_quadratic(loss):
    # A (B, B, B) float32 temporary at B = 2048 would be 32 GB; (B, B) ones are 16 MB.
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 128, size=2048)
    value = float(loss(labels, unit(rng.normal(size=(2048, 16)))))
    assert np.isfinite(value) and value > 0
