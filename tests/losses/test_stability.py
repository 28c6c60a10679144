"""Finite values and gradients at the extremes, and low-precision inputs."""

import itertools

import keras
import numpy as np
import pytest
from keras import ops

import losses

GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]


def extreme_logits():
    """Rows: p_y → 1, confident mistake, all equal, mixed huge values (|z| up to 1e4)."""
    logits = np.array(
        [
            [1e4, 0.0, -1e4],
            [-1e4, 1e4, 0.0],
            [1e4, 1e4, 1e4],
            [-1e4, -1e4, 1e4],
            [30.0, 0.0, 0.0],
        ],
        "float32",
    )
    return logits, np.array([0, 0, 1, 2, 0])


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [None, [0.5, 1.0, 2.0]], ids=["none", "per-class"])
def test_focal_finite_at_extremes(gamma, alpha, grad):
    logits, labels = extreme_logits()
    loss = losses.FocalLoss(gamma, alpha, reduction="none")
    value, g = grad(lambda z: ops.sum(loss(labels, z)), logits)
    per_sample = ops.convert_to_numpy(loss(labels, logits))
    assert np.all(np.isfinite(per_sample)) and np.all(np.isfinite(g))
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
    "loss", [losses.Crossentropy(), losses.BalancedCrossentropy([1.0, 2.0, 3.0])], ids=str
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


CASES = [
    (losses.Crossentropy(), "logits"),
    (losses.BalancedCrossentropy([1.0, 2.0, 0.5]), "logits"),
    (losses.FocalLoss(0.5, [1.0, 2.0, 0.5]), "logits"),
    (losses.TripletLoss(mining="semi-hard"), "embeddings"),
    (losses.TripletLoss(mining="all", soft=True), "embeddings"),
    (losses.ContrastiveLoss(), "embeddings"),
]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("loss,kind", CASES, ids=lambda c: getattr(c, "name", c))
def test_low_precision_inputs_are_computed_in_float32(loss, kind, dtype, rng):
    labels = rng.integers(0, 3, size=12)
    y_pred = rng.normal(scale=3.0, size=(12, 3 if kind == "logits" else 4))
    low = ops.cast(y_pred, dtype)
    as_float32 = ops.cast(low, "float32")  # same rounded values, full precision compute
    got, want = loss(labels, low), loss(labels, as_float32)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
    per_sample = loss.call(ops.convert_to_tensor(labels), low)
    assert keras.backend.standardize_dtype(per_sample.dtype) == "float32"
