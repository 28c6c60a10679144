"""Quantile-interval and Gaussian-head metrics against explicit loops and hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics.regression_intervals import (
    Z_CENTRAL,
    check_quantiles,
    gaussian_metrics,
    gaussian_nll,
    head_metrics,
    head_variance,
    pinball,
    quantile_metrics,
    quantile_name,
    sigma_calibration,
)


def loop_pinball(y, q, tau):
    total = 0.0
    for yi, qi in zip(y, q, strict=True):
        u = yi - qi
        total += tau * u if u >= 0 else (tau - 1) * u
    return total / len(y)


def test_pinball_hand_values():
    # u = y − q = [2, −1]: τ = 0.1 → (0.2 + 0.9) / 2; τ = 0.9 → (1.8 + 0.1) / 2
    assert pinball([3.0, 0.0], [1.0, 1.0], 0.1) == pytest.approx(0.55)
    assert pinball([3.0, 0.0], [1.0, 1.0], 0.9) == pytest.approx(0.95)
    assert pinball([1.0, 2.0], [1.0, 2.0], 0.3) == 0.0


def test_quantile_metrics_match_loops():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    taus = [0.1, 0.5, 0.9]
    q = np.sort(rng.normal(size=(200, 3)), axis=1) * 1.5
    q[:7] = q[:7, ::-1]  # seven rows with crossing quantiles
    got = quantile_metrics(y, q, taus)
    for k, tau in enumerate(taus):
        assert got[f"pinball_{quantile_name(tau)}"] == pytest.approx(loop_pinball(y, q[:, k], tau))
    covered = width = crossing = 0
    for i in range(200):
        covered += q[i, 0] <= y[i] <= q[i, 2]
        width += q[i, 2] - q[i, 0]
        crossing += any(q[i, j + 1] < q[i, j] for j in range(2))
    assert got["interval_coverage"] == pytest.approx(covered / 200)
    assert got["interval_width"] == pytest.approx(width / 200)
    assert got["crossing_rate"] == pytest.approx(crossing / 200)
    assert got["crossing_rate"] >= 7 / 200
    assert got["interval_nominal"] == pytest.approx(0.8)
    assert got["pinball_mean"] == pytest.approx(np.mean([loop_pinball(y, q[:, k], t)
                                                         for k, t in enumerate(taus)]))


def test_true_quantiles_cover_their_share():
    # The Gaussian's own 0.1 / 0.9 quantiles cover ~80 % of 20 000 draws (±0.6 % at 2 s.e.).
    y = np.random.default_rng(1).normal(size=20_000)
    q = np.tile([-1.2815516, 0.0, 1.2815516], (len(y), 1))
    got = quantile_metrics(y, q, [0.1, 0.5, 0.9])
    assert got["interval_coverage"] == pytest.approx(0.8, abs=0.006)
    assert got["interval_width"] == pytest.approx(2 * 1.2815516)


def test_quantile_names():
    assert [quantile_name(t) for t in (0.1, 0.5, 0.9, 0.025)] == ["q10", "q50", "q90", "q2.5"]


@pytest.mark.parametrize("bad", [[0.9, 0.1], [0.0, 0.5], [0.5, 1.0], [0.3, 0.3], []])
def test_bad_quantiles_are_named(bad):
    with pytest.raises(ValueError, match="strictly increasing"):
        check_quantiles(bad)


def test_quantile_shape_is_checked():
    with pytest.raises(ValueError, match=r"\(N, K\) = \(3, 2\)"):
        quantile_metrics(np.zeros(3), np.zeros((3, 3)), [0.1, 0.9])


def test_gaussian_nll_hand_value_and_loop():
    # y = μ, σ² = 1: ½ log 2π; y − μ = 2, σ² = 4: ½ log 8π + 4/8
    assert gaussian_nll([0.0], [0.0], [1.0]) == pytest.approx(0.5 * math.log(2 * math.pi))
    assert gaussian_nll([2.0], [0.0], [4.0]) == pytest.approx(0.5 * math.log(8 * math.pi) + 0.5)
    rng = np.random.default_rng(2)
    y, mu, var = rng.normal(size=50), rng.normal(size=50), rng.uniform(0.1, 3, 50)
    loop = sum(0.5 * math.log(2 * math.pi * v) + (a - m) ** 2 / (2 * v)
               for a, m, v in zip(y, mu, var, strict=True)) / 50
    assert gaussian_nll(y, mu, var) == pytest.approx(loop)
    with pytest.raises(ValueError, match="variance must be > 0"):
        gaussian_nll([0.0], [0.0], [0.0])


def test_gaussian_coverage():
    assert Z_CENTRAL == pytest.approx(1.6448536, rel=1e-6)
    # errors 1, 2, 3 with σ = 1: only |1| ≤ 1.645
    got = gaussian_metrics([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    assert got["coverage_90"] == pytest.approx(1 / 3)
    assert got["sigma_mean"] == pytest.approx(1.0)
    # a calibrated head covers ~90 % (±0.5 % at 2 s.e. on 20 000 rows)
    rng = np.random.default_rng(3)
    sigma = rng.uniform(0.5, 2.0, 20_000)
    y = rng.normal(size=20_000) * sigma
    got = gaussian_metrics(y, np.zeros_like(y), sigma**2)
    assert got["coverage_90"] == pytest.approx(0.9, abs=0.005)


def test_sigma_calibration_bins_match_loop():
    rng = np.random.default_rng(4)
    sigma = rng.uniform(0.1, 2.0, 103)
    error = rng.normal(size=103) * sigma
    got = sigma_calibration(sigma, error, bins=10)
    order = sorted(range(103), key=lambda i: sigma[i])
    sizes = [11, 11, 11, 10, 10, 10, 10, 10, 10, 10]  # 103 = 3·11 + 7·10
    assert list(got["count"]) == sizes
    start = 0
    for b, size in enumerate(sizes):
        rows = order[start : start + size]
        start += size
        assert got["sigma"][b] == pytest.approx(sum(sigma[i] for i in rows) / size)
        assert got["rms_error"][b] == pytest.approx(math.sqrt(sum(error[i] ** 2 for i in rows)
                                                              / size))
        assert got["mean_abs_error"][b] == pytest.approx(sum(abs(error[i]) for i in rows) / size)
    assert np.all(np.diff(got["sigma"]) > 0)
    assert len(sigma_calibration(sigma[:3], error[:3], bins=10)["count"]) == 3


def test_integer_weights_equal_repeated_rows():
    rng = np.random.default_rng(5)
    y, q = rng.normal(size=20), np.sort(rng.normal(size=(20, 2)), axis=1)
    mu, var = rng.normal(size=20), rng.uniform(0.2, 2, 20)
    w = rng.integers(0, 4, 20).astype(float)
    w[0] = 1.0
    rep = np.repeat(np.arange(20), w.astype(int))
    assert quantile_metrics(y, q, [0.2, 0.8], w) == pytest.approx(
        quantile_metrics(y[rep], q[rep], [0.2, 0.8]))
    assert gaussian_metrics(y, mu, var, w) == pytest.approx(
        gaussian_metrics(y[rep], mu[rep], var[rep]))
    with pytest.raises(ValueError, match="positive sum"):
        pinball(y, q[:, 0], 0.5, np.zeros(20))


def test_head_metrics_read_the_loss_output():
    y = np.array([0.0, 1.0, 2.0, 10.0])
    q = np.array([[-1.0, 0.0, 1.0], [0.0, 1.0, 3.0], [1.0, 2.0, 3.0], [0.0, 1.0, 2.0]])
    got = head_metrics(q, y, None, "quantiles", {"quantiles": "0.1,0.5,0.9"})
    assert got == quantile_metrics(y, q, [0.1, 0.5, 0.9])
    assert got["interval_coverage"] == 0.75  # the last row lies above its interval
    # mean / log-variance: log σ² = log 4 → σ = 2; −50 is floored at min_variance = 0.01
    head = np.array([[0.0, np.log(4.0)], [1.0, -50.0]])
    got = head_metrics(head, [1.0, 1.0], None, "mean_logvar", {"min_variance": 0.01})
    assert got == pytest.approx(gaussian_metrics([1.0, 1.0], [0.0, 1.0], [4.0, 0.01]))
    np.testing.assert_allclose(head_variance(head, {"min_variance": 0.01}), [4.0, 0.01])
    assert head_metrics(np.zeros((2, 1)), [0.0, 1.0], None, "value", {}) == {}
    with pytest.raises(ValueError, match="2 outputs, got 3"):
        head_variance(np.zeros((2, 3)), {})
