"""ProxyAnchorLoss against the explicit proxy-by-proxy loop; shares, extremes, degenerate batches."""

import math

import numpy as np
import pytest
import reference
from batches import cosines_and_labels
from keras import ops

from losses import ProxyAnchorLoss, proxy_anchor_loss

# 6 classes, 12 samples: some proxies usually have no positive in the batch.
BATCH, CLASSES = 12, 6


@pytest.mark.parametrize("alpha", [1.0, 8.0, 32.0, 64.0])
@pytest.mark.parametrize("delta", [0.0, 0.1, 0.3])
def test_matches_reference(alpha, delta, rng):
    cosines, labels = cosines_and_labels(rng, BATCH, CLASSES)
    got = float(ProxyAnchorLoss(alpha, delta)(labels, cosines))
    want = reference.proxy_anchor(labels, cosines, alpha, delta)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_batch_without_some_classes_averages_positives_over_present_proxies():
    # Proxies 0 and 2 have positives, 1 and 3 none: the positive part is over 2 proxies,
    # the negative part over all 4.
    labels = np.array([0, 0, 2])
    cosines = np.array([[0.5, 0.0, 0.0, 0.0], [0.2, 0.0, 0.0, 0.0], [0.0, 0.0, 0.9, 0.0]])
    a, d = 4.0, 0.1
    pos0 = math.log1p(math.exp(-a * (0.5 - d)) + math.exp(-a * (0.2 - d)))
    pos2 = math.log1p(math.exp(-a * (0.9 - d)))
    neg0 = math.log1p(math.exp(a * (0.0 + d)))
    neg1 = math.log1p(3 * math.exp(a * d))
    neg2 = math.log1p(2 * math.exp(a * d))
    neg3 = neg1
    want = (pos0 + pos2) / 2 + (neg0 + neg1 + neg2 + neg3) / 4
    got = float(ProxyAnchorLoss(a, d)(labels, cosines.astype("float32")))
    assert got == pytest.approx(want, rel=1e-6)


def test_one_class_in_the_batch(rng):
    cosines = rng.uniform(-1.0, 1.0, size=(5, 3)).astype("float32")
    labels = np.zeros(5, "int64")
    got = float(ProxyAnchorLoss(8.0, 0.1)(labels, cosines))
    assert got == pytest.approx(reference.proxy_anchor(labels, cosines, 8.0, 0.1), rel=1e-6)


@pytest.mark.parametrize("alpha", [32.0, 1000.0])
def test_large_alpha_does_not_overflow(alpha):
    # Every cosine 1: each proxy's negative has e^{α(1 + δ)} (e^{1100} at α = 1000, far past
    # float32 and float64): log(1 + e^x) must come out as x.
    labels = np.array([0, 1])
    cosines = np.ones((2, 2), "float32")
    got = float(ProxyAnchorLoss(alpha, 0.1)(labels, cosines))
    pos = math.log1p(math.exp(-alpha * 0.9))
    neg = alpha * 1.1 + math.log1p(math.exp(-alpha * 1.1))
    assert got == pytest.approx(pos + neg, rel=1e-6)


@pytest.mark.parametrize("reduction", ["none", None])
def test_shares_sum_to_the_loss_times_batch(reduction, rng):
    cosines, labels = cosines_and_labels(rng, BATCH, CLASSES)
    shares = ops.convert_to_numpy(ProxyAnchorLoss(reduction=reduction)(labels, cosines))
    assert shares.shape == (12,)
    assert np.all(shares >= 0)
    loss = reference.proxy_anchor(labels, cosines, 32.0, 0.1)
    np.testing.assert_allclose(shares.sum(), 12 * loss, rtol=1e-5)
    np.testing.assert_allclose(
        shares, ops.convert_to_numpy(proxy_anchor_loss(labels, cosines)), rtol=1e-6
    )
    total = float(ProxyAnchorLoss(reduction="sum")(labels, cosines))
    np.testing.assert_allclose(total, 12 * loss, rtol=1e-5)


def test_shares_follow_each_samples_weight_in_the_sums():
    # One proxy, two positives: the one farther from the proxy (larger e^{−α(s − δ)})
    # carries more; a negative far from every proxy carries almost nothing.
    labels = np.array([0, 0, 1])
    cosines = np.array([[0.9, -1.0], [0.1, -1.0], [-1.0, 0.9]], "float32")
    shares = ops.convert_to_numpy(ProxyAnchorLoss(8.0, 0.1, reduction="none")(labels, cosines))
    assert shares[1] > shares[0]


@pytest.mark.parametrize("alpha,delta", [(8.0, 0.1), (32.0, 0.0)])
def test_gradient_of_the_mean_of_shares_matches_finite_differences(alpha, delta, grad, rng):
    cosines, labels = cosines_and_labels(rng, batch=6, classes=4)
    cosines = (cosines * 0.3).astype("float32")  # moderate exponents at α = 32
    _, g = grad(lambda c: ProxyAnchorLoss(alpha, delta)(labels, c), cosines)
    want = reference.numeric_gradient(
        lambda c: reference.proxy_anchor(labels, c, alpha, delta), cosines
    )
    np.testing.assert_allclose(g, want, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("alpha", [32.0, 1000.0])
def test_finite_gradient_on_degenerate_batches(alpha, grad):
    batches = [
        (np.array([0, 0, 1, 2]), np.array([[1, -1, 1], [-1, 1, -1], [1, 1, 1], [-1, -1, -1]])),
        (np.zeros(4), np.ones((4, 3))),  # one class, identical embeddings
        (np.array([1]), np.array([[0.3, 1.0, -1.0]])),  # a single sample
    ]
    for labels, cosines in batches:
        value, g = grad(
            lambda c, labels=labels: ProxyAnchorLoss(alpha)(labels, c), cosines.astype("float32")
        )
        assert np.isfinite(value) and np.all(np.isfinite(g)), (labels, value, g)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"alpha": 0.0}, "alpha=0.0"),
        ({"alpha": -1.0}, "alpha=-1.0"),
        ({"delta": -0.1}, "delta=-0.1"),
        ({"alpha": float("inf")}, "alpha=inf"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProxyAnchorLoss(**kwargs)
