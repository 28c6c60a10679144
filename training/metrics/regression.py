"""Regression scores of one split: point metrics of a prediction against float targets.

`regression_metrics(pred, y, weights)` is the one place val (each epoch) and test (once) are
scored; `training.run.regression.regression_scores` turns the model's outputs into the point
prediction (the 0.5 quantile, the Gaussian mean) and calls it. Extra measures of a loss's own
output (pinball per quantile, interval coverage, Gaussian NLL) extend `output_metrics` below:
it gets the raw output and returns more names, so the trainer logs them unchanged.

All NumPy, float64 accumulation: N is at most a few hundred thousand rows, so a pass costs
milliseconds and exactness beats speed.
"""

from __future__ import annotations

import numpy as np

from training.metrics.regression_intervals import head_metrics


def _weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n, np.float64)
    w = np.asarray(weights, np.float64).reshape(-1)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {w.shape}")
    return w


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The smallest value whose cumulative weight reaches half the total; with equal weights
    and an even count, the mean of the two middle values (np.median's convention)."""
    if np.all(weights == weights[0]):
        return float(np.median(values))
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def regression_metrics(pred, y, weights=None) -> dict[str, float]:
    """{rmse, mae, r2, median_ae} of point predictions `pred` (N,) against targets `y` (N,).

    Formula (w = sample weights, 1 when None; weighted least squares scores as it trains):
        rmse = sqrt(Σ w e² / Σ w),  e = pred − y
        mae = Σ w |e| / Σ w
        r2 = 1 − Σ w e² / Σ w (y − ȳ_w)²,  ȳ_w = Σ w y / Σ w   (nan when y is constant)
        median_ae = the (weighted) median of |e|

    Rows of weight 0 count for nothing. Raises ValueError on shapes that differ or no weight.
    """
    pred = np.asarray(pred, np.float64).reshape(-1)
    y = np.asarray(y, np.float64).reshape(-1)
    if pred.shape != y.shape:
        raise ValueError(f"predictions {pred.shape} and targets {y.shape} differ in shape")
    w = _weights(weights, len(y))
    total = w.sum()
    if not total > 0:
        raise ValueError("regression metrics need at least one row of positive weight")
    error = pred - y
    mse = float(np.sum(w * error**2) / total)
    spread = float(np.sum(w * (y - np.sum(w * y) / total) ** 2) / total)
    keep = w > 0
    return {
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.sum(w * np.abs(error)) / total),
        "r2": 1.0 - mse / spread if spread > 0 else float("nan"),
        "median_ae": weighted_median(np.abs(error)[keep], w[keep]),
    }


def point_prediction(outputs: np.ndarray, output: str, quantiles=()) -> np.ndarray:
    """The point prediction (N,) of a regression head's raw outputs (N, units):
    "value" its only column; "quantiles" the column of the median (else the middle one);
    "mean_logvar" the mean (column 0)."""
    outputs = np.asarray(outputs, np.float64)
    outputs = outputs.reshape(len(outputs), -1)
    if output == "quantiles" and len(quantiles):
        q = np.asarray(quantiles, np.float64)
        return outputs[:, int(np.argmin(np.abs(q - 0.5)))]
    return outputs[:, 0]


def output_metrics(outputs: np.ndarray, y, weights, output: str, loss_args: dict) -> dict:
    """Measures of the head's whole output beyond the point metrics: pinball per quantile,
    outer-interval coverage and width ("quantiles"), the Gaussian NLL and central 90 %
    coverage ("mean_logvar"), nothing for "value" (`regression_intervals.head_metrics`).
    `outputs` (N, units) raw, `y` (N,), `weights` (N,) or None."""
    return head_metrics(outputs, y, weights, output, loss_args)
