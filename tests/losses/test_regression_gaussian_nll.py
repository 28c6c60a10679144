"""GaussianNLLLoss (β-NLL) against the NumPy loop, its gradients in closed form (β weights
under stop-gradient), the variance floor and cap at extreme log-variances, and bad values."""

import math

import numpy as np
import pytest
import regression_reference as ref
from keras import ops

import losses
from losses import GaussianNLLLoss

B = 16


def numpy(x):
    return ops.convert_to_numpy(x)


def head(rng, low=-2.0, high=2.0):
    """(B,) targets and a (B, 2) head: means near the targets, log σ² uniform in [low, high]."""
    y = rng.normal(scale=2.0, size=B).astype("float32")
    mean = y + rng.normal(size=B)
    return y, np.stack([mean, rng.uniform(low, high, size=B)], axis=1).astype("float32")


@pytest.mark.parametrize("beta", [0.0, 0.25, 0.5, 1.0])
def test_matches_the_numpy_loop(beta, rng):
    y, pred = head(rng)
    got = numpy(GaussianNLLLoss(beta, reduction="none")(y, pred))
    np.testing.assert_allclose(got, ref.gaussian_nll(y, pred, beta, 1e-6), rtol=1e-5)
    # The floor where it acts: log σ² = −20 < log 1e-3, so σ² = 1e-3.
    pred[:, 1] = -20.0
    got = numpy(GaussianNLLLoss(beta, min_variance=1e-3, reduction="none")(y, pred))
    np.testing.assert_allclose(got, ref.gaussian_nll(y, pred, beta, 1e-3), rtol=1e-5)


def test_hand_computed_value():
    # μ = 0, log σ² = log 4, y = 2: ½ (log 4 + 4/4); β = ½ multiplies by σ = 2.
    pred = np.array([[0.0, math.log(4.0)]], "float32")
    plain = 0.5 * (math.log(4.0) + 1.0)
    assert float(GaussianNLLLoss(0.0)(np.array([2.0]), pred)) == pytest.approx(plain, rel=1e-6)
    assert float(GaussianNLLLoss(0.5)(np.array([2.0]), pred)) == pytest.approx(2 * plain,
                                                                               rel=1e-6)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_gradient_is_the_nll_gradient_times_the_stopped_weight(beta, rng, grad):
    """d/dμ = σ^{2β} (μ − y)/σ², d/ds = σ^{2β} · ½ (1 − (y − μ)²/σ²), each over B: the weight
    σ^{2β} itself is not differentiated. At β = 1 the mean gets (μ − y), ½·MSE's gradient."""
    y, pred = head(rng)
    _, g = grad(lambda x: GaussianNLLLoss(beta)(y, x), pred)
    mean, log_var = pred[:, 0].astype(np.float64), pred[:, 1].astype(np.float64)
    var, r = np.exp(log_var), y - mean
    weight = var**beta
    np.testing.assert_allclose(g[:, 0], weight * (mean - y) / var / B, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(g[:, 1], weight * 0.5 * (1 - r**2 / var) / B, rtol=1e-4,
                               atol=1e-7)
    if beta == 1.0:
        np.testing.assert_allclose(g[:, 0], (mean - y) / B, rtol=1e-4, atol=1e-7)


EXTREMES = [-1e30, -1e4, -100.0, 1e4, 1e30]


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_the_floor_and_cap_keep_loss_and_gradient_finite_at_extreme_log_variances(beta, grad):
    """Log σ² from −1e30 to 1e30: the value is that of σ² = min_variance below the floor and
    of σ² = e^60 above the cap, and the gradient is finite (and, below the floor, that of
    the floored loss: straight through, never 0, so a head stuck there can still move up).
    Without the floor the same head gives an infinite loss: (y − μ)²/exp(−1e4) = ∞."""
    y = np.full(len(EXTREMES), 2.0, "float32")
    pred = np.stack([np.zeros(len(EXTREMES)), EXTREMES], axis=1).astype("float32")
    loss = GaussianNLLLoss(beta, min_variance=1e-6, reduction="none")
    values = numpy(loss(y, pred))
    _, g = grad(lambda x: ops.sum(loss(y, x)), pred)
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(g)), (values, g)
    floored = ref.gaussian_nll(y[:1], np.array([[0.0, math.log(1e-6)]]), beta, 1e-6)[0]
    capped = (math.exp(60.0) ** beta) * 0.5 * (60.0 + 4.0 * math.exp(-60.0))
    np.testing.assert_allclose(values, [floored, floored, floored, capped, capped], rtol=1e-5)
    # Straight through: below the floor, d/ds = σ^{2β} · ½ (1 − r²/σ²) at σ² = 1e-6.
    want = (1e-6**beta) * 0.5 * (1 - 4.0 / 1e-6)
    np.testing.assert_allclose(g[:3, 1], want, rtol=1e-5)
    assert np.all(g[:3, 0] != 0)
    with np.errstate(over="ignore", divide="ignore"):  # the overflow is the point
        naive = 0.5 * (pred[:, 1] + (y - pred[:, 0]) ** 2 / np.exp(pred[:, 1]))
    assert not np.all(np.isfinite(naive))


def test_output_units_and_head_width():
    spec = losses.spec("gaussian_nll")
    assert spec.output == "mean_logvar" and losses.output_units(spec) == 2
    with pytest.raises(ValueError, match="gaussian_nll reads 2 output columns per sample; the "
                       "model gives 1"):
        GaussianNLLLoss()(np.zeros(4), np.zeros((4, 1)))


@pytest.mark.parametrize(("key", "bad", "needle"), [
    ("beta", -0.1, "beta=-0.1 is out of range; valid: >= 0 and <= 1 number"),
    ("beta", 1.5, "beta=1.5 is out of range; valid: >= 0 and <= 1 number"),
    ("min_variance", 0.0, "min_variance=0.0 is out of range; valid: > 0 number"),
    ("min_variance", -1e-6, "min_variance=-1e-06 is out of range; valid: > 0 number"),
])
def test_bad_values_name_the_value_and_the_valid_range(key, bad, needle):
    with pytest.raises(losses.LossArgError) as built:
        GaussianNLLLoss(**{key: bad})
    assert needle in str(built.value)
    with pytest.raises(losses.LossArgError) as parsed:
        losses.spec("gaussian_nll").arg(key).parse(str(bad))
    assert needle in str(parsed.value)
