"""Uncertainty metrics of a regression run: quantile intervals (pinball) and a Gaussian head.

Pure NumPy on plain arrays, in the target's own units. Two kinds of prediction:

- ``pinball`` with sorted quantiles ``τ_1 < … < τ_K``: ``(N, K)`` predicted quantiles. The outer
  interval ``[q_τ1, q_τK]`` should cover a share ``τ_K − τ_1`` of the targets (0.8 for
  0.1, 0.9); its width is what that coverage costs. The pinball loss per quantile is
  ``mean ρ_τ(y − q_τ)`` with ``ρ_τ(u) = max(τu, (τ − 1)u)`` (Koenker & Bassett 1978).
- ``gaussian_nll``: a mean ``μ`` and a variance ``σ²`` per row (the head's log-variance,
  exponentiated and floored as the loss floors it). The NLL is the full Gaussian negative
  log-likelihood, ``½ log(2πσ²) + (y − μ)²/(2σ²)``, averaged: with the ``½ log 2π`` constant it
  is comparable with other papers' numbers (the training loss drops it). The central 90 %
  interval is ``μ ± z_0.95 σ``; it should cover 0.9 of the targets.

``sigma_calibration`` bins rows by predicted σ (equal counts) and gives, per bin, the mean σ
and the observed RMS and mean absolute error: for a calibrated Gaussian head the RMS error of
a bin equals its σ and the mean |error| is ``σ √(2/π)``.
"""

from __future__ import annotations

import inspect

import numpy as np
from scipy.stats import norm

from losses.gaussian_nll import MAX_LOG_VARIANCE, gaussian_nll_loss

CENTRAL = 0.9  # the Gaussian head's interval: central 90 %
Z_CENTRAL = float(norm.ppf(0.5 + CENTRAL / 2))  # 1.6449: μ ± z σ holds 90 % of a Gaussian
# The loss's own default floor of σ² (a head's loss_args normally carry min_variance).
MIN_VARIANCE = inspect.signature(gaussian_nll_loss).parameters["min_variance"].default


def _column(values, name: str) -> np.ndarray:
    array = np.asarray(values, np.float64)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must have shape (N,) or (N, 1), got {array.shape}")
    return array


def quantile_name(tau: float) -> str:
    """The metric suffix of a quantile: 0.1 → ``q10``, 0.025 → ``q2.5``, 0.5 → ``q50``."""
    return f"q{100 * tau:g}"


def _weights(weights, n: int) -> np.ndarray:
    """Sample weights ``(n,)`` (1 when None), as the run's weighted least squares uses them."""
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, np.float64).reshape(-1)
    if w.shape != (n,) or not w.sum() > 0:
        raise ValueError(f"weights must be ({n},) with a positive sum, got shape {w.shape}")
    return w


def _mean(values: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * values) / np.sum(w))


def pinball(y, predicted, tau: float, weights=None) -> float:
    """``Σ_i w_i max(τ u_i, (τ − 1) u_i) / Σ w`` with ``u = y − predicted``; all ``(N,)``."""
    u = _column(y, "y") - _column(predicted, "predicted")
    return _mean(np.maximum(tau * u, (tau - 1.0) * u), _weights(weights, len(u)))


def check_quantiles(quantiles) -> np.ndarray:
    """The quantile levels as a float array; ValueError unless strictly increasing in (0, 1)."""
    taus = np.asarray(quantiles, np.float64).ravel()
    if taus.size == 0 or np.any(taus <= 0) or np.any(taus >= 1) or np.any(np.diff(taus) <= 0):
        raise ValueError(f"quantiles must be strictly increasing values in (0, 1), got "
                         f"{list(taus)}")
    return taus


def quantile_metrics(y, predicted, quantiles, weights=None) -> dict[str, float]:
    """Metrics of predicted quantiles ``(N, K)`` against targets ``(N,)``, means weighted by
    ``weights`` ``(N,)`` when given (as the run's other metrics are).

    Returns ``pinball_<q>`` per quantile (``quantile_name``), ``pinball_mean`` (their mean),
    and with ``K ≥ 2``: ``interval_coverage`` (share of rows with ``q_τ1 ≤ y ≤ q_τK``),
    ``interval_nominal`` (``τ_K − τ_1``), ``interval_width`` (mean ``q_τK − q_τ1``; negative
    when the outer quantiles cross) and ``crossing_rate`` (share of rows where any
    neighbouring pair of quantiles is out of order).
    """
    taus = check_quantiles(quantiles)
    y = _column(y, "y")
    predicted = np.asarray(predicted, np.float64)
    if predicted.shape != (len(y), len(taus)):
        raise ValueError(f"predicted quantiles must have shape (N, K) = ({len(y)}, {len(taus)}), "
                         f"got {predicted.shape}")
    w = _weights(weights, len(y))
    out = {f"pinball_{quantile_name(t)}": pinball(y, predicted[:, k], t, w)
           for k, t in enumerate(taus)}
    out["pinball_mean"] = float(np.mean(list(out.values())))
    if len(taus) >= 2:
        lower, upper = predicted[:, 0], predicted[:, -1]
        out["interval_coverage"] = _mean((y >= lower) & (y <= upper), w)
        out["interval_nominal"] = float(taus[-1] - taus[0])
        out["interval_width"] = _mean(upper - lower, w)
        out["crossing_rate"] = _mean(np.any(np.diff(predicted, axis=1) < 0, axis=1), w)
    return out


def gaussian_nll(y, mean, variance, weights=None) -> float:
    """``Σ_i w_i [½ log(2π σ_i²) + (y_i − μ_i)² / (2 σ_i²)] / Σ w``; every argument ``(N,)``."""
    y, mean, variance = _column(y, "y"), _column(mean, "mean"), _column(variance, "variance")
    if np.any(variance <= 0):
        raise ValueError(f"variance must be > 0, got min {variance.min():g}")
    terms = 0.5 * np.log(2 * np.pi * variance) + (y - mean) ** 2 / (2 * variance)
    return _mean(terms, _weights(weights, len(y)))


def gaussian_metrics(y, mean, variance, weights=None) -> dict[str, float]:
    """``nll``, ``coverage_90`` (share with ``|y − μ| ≤ z_0.95 σ``) and ``sigma_mean``."""
    y, mean, variance = _column(y, "y"), _column(mean, "mean"), _column(variance, "variance")
    sigma = np.sqrt(variance)
    w = _weights(weights, len(y))
    return {
        "nll": gaussian_nll(y, mean, variance, w),
        "coverage_90": _mean(np.abs(y - mean) <= Z_CENTRAL * sigma, w),
        "sigma_mean": _mean(sigma, w),
    }


def sigma_calibration(sigma, error, bins: int = 10) -> dict[str, np.ndarray]:
    """Rows sorted by predicted σ, cut into ``min(bins, N)`` bins of (nearly) equal count.

    Args:
        sigma: ``(N,)`` predicted standard deviations.
        error: ``(N,)`` observed errors ``y − μ``.
        bins: number of bins (``np.array_split`` of the σ order: sizes differ by at most 1).

    Returns ``sigma``, ``rms_error``, ``mean_abs_error`` and ``count``, each ``(bins,)``.
    """
    sigma, error = _column(sigma, "sigma"), _column(error, "error")
    if len(sigma) != len(error) or len(sigma) == 0:
        raise ValueError(f"sigma and error must hold the same, non-zero number of rows, got "
                         f"{len(sigma)} and {len(error)}")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    groups = np.array_split(np.argsort(sigma, kind="stable"), min(bins, len(sigma)))
    return {
        "sigma": np.array([sigma[g].mean() for g in groups]),
        "rms_error": np.array([np.sqrt(np.mean(error[g] ** 2)) for g in groups]),
        "mean_abs_error": np.array([np.abs(error[g]).mean() for g in groups]),
        "count": np.array([len(g) for g in groups]),
    }


def _levels(value) -> tuple[float, ...]:
    """A loss's ``quantiles`` argument: a ``"0.1,0.5,0.9"`` string or a sequence."""
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    return tuple(float(v) for v in value)


def head_variance(outputs, loss_args: dict) -> np.ndarray:
    """σ² ``(N,)`` of a mean/log-variance head ``(N, 2)``: ``exp(s)`` floored at the loss's
    ``min_variance`` (and capped at ``e^MAX_LOG_VARIANCE``), as ``gaussian_nll`` bounds it."""
    outputs = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    if outputs.shape[1] != 2:
        raise ValueError(f"a mean/log-variance head has 2 outputs, got {outputs.shape[1]}")
    floor = float(loss_args.get("min_variance", MIN_VARIANCE))
    return np.exp(np.clip(outputs[:, 1], np.log(floor), MAX_LOG_VARIANCE))


def head_metrics(outputs, y, weights, output: str, loss_args: dict) -> dict[str, float]:
    """The uncertainty metrics a regression head's raw outputs ``(N, units)`` allow.

    ``output`` is the loss entry's: ``"quantiles"`` → ``quantile_metrics`` at the loss's
    ``quantiles``; ``"mean_logvar"`` → ``gaussian_metrics`` of column 0 and ``head_variance``;
    ``"value"`` (a plain point prediction) → nothing.
    """
    outputs = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    if output == "quantiles":
        return quantile_metrics(y, outputs, _levels(loss_args["quantiles"]), weights)
    if output == "mean_logvar":
        return gaussian_metrics(y, outputs[:, 0], head_variance(outputs, loss_args), weights)
    return {}
