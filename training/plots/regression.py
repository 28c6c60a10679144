"""Regression figures of one run: predictions against targets, residuals, σ calibration.

Plain arrays in the target's units in, a Figure out (``new_figure``). The σ calibration
figure draws ``training.metrics.regression_intervals.sigma_calibration``'s bins, the binning
of nothing else, so the figure and any number read off it agree.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from training.metrics.regression_intervals import sigma_calibration
from training.plots.figure import GRID_ALPHA, new_figure

MAX_POINTS = 5000  # a scatter beyond this is a blot and slow to render: a seeded subsample


def _pairs(targets, predictions) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(targets, np.float64).reshape(-1)
    p = np.asarray(predictions, np.float64).reshape(-1)
    if len(y) != len(p) or len(y) == 0:
        raise ValueError(f"targets and predictions must hold the same, non-zero number of "
                         f"values, got {len(y)} and {len(p)}")
    if len(y) > MAX_POINTS:
        keep = np.random.default_rng(0).choice(len(y), MAX_POINTS, replace=False)
        y, p = y[keep], p[keep]
    return y, p


def _heading(title: str, text: str) -> str:
    """The run's title on its own line above the figure's own (a long title would be cut)."""
    return f"{title}\n{text}" if title else text


def prediction_scatter(targets, predictions, title: str = "") -> Figure:
    """Predicted against true values, with the diagonal ``ŷ = y`` (a perfect model).

    Args:
        targets: (N,) true values.
        predictions: (N,) or (N, 1) predicted values (the mean, or the median quantile).
        title: the figure title's prefix (e.g. the loss and dataset).
    """
    y, p = _pairs(targets, predictions)
    figure = new_figure((5.2, 5.0))
    axes = figure.add_subplot()
    axes.scatter(y, p, s=10, alpha=0.6)
    low, high = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    axes.plot([low, high], [low, high], color="black", linewidth=1, label="ŷ = y")
    rmse = float(np.sqrt(np.mean((p - y) ** 2)))
    axes.set(xlabel="target y", ylabel="prediction ŷ",
             title=_heading(title, f"predictions (RMSE {rmse:.4g}, N={len(y)})"))
    axes.set_aspect("equal", adjustable="datalim")
    axes.grid(alpha=GRID_ALPHA)
    axes.legend(loc="upper left")
    return figure


def residuals(targets, predictions, title: str = "") -> Figure:
    """Residuals ``y − ŷ`` against the prediction (left) and their histogram (right).

    Structure on the left (a slope, a funnel) is what the model missed or a variance that
    grows with the level; heavy tails on the right are what an L1 or Huber loss ignores.
    """
    y, p = _pairs(targets, predictions)
    r = y - p
    figure = new_figure((9.6, 4.0))
    left, right = figure.subplots(1, 2, width_ratios=[2, 1])
    left.scatter(p, r, s=10, alpha=0.6)
    left.axhline(0.0, color="black", linewidth=1)
    left.set(xlabel="prediction ŷ", ylabel="residual y − ŷ", title="residuals")
    left.grid(alpha=GRID_ALPHA)
    right.hist(r, bins=min(40, max(5, len(r) // 10)), orientation="horizontal", alpha=0.8)
    right.axhline(0.0, color="black", linewidth=1)
    right.set(xlabel="count", title=f"mean {r.mean():+.3g}, sd {r.std():.3g}")
    right.sharey(left)
    right.grid(alpha=GRID_ALPHA)
    if title:
        figure.suptitle(title)
    return figure


def sigma_calibration_figure(sigma, error, bins: int = 10, title: str = "") -> Figure:
    """Predicted σ against the observed error, rows binned by σ (equal counts per bin).

    Per bin: the RMS error (calibrated: on ``y = x``) and the mean |error| (calibrated:
    on ``y = √(2/π) x``, the mean absolute value of a Gaussian of standard deviation x).
    Points above the lines: the head is over-confident there; below: under-confident.
    """
    binned = sigma_calibration(sigma, error, bins)
    figure = new_figure((5.6, 5.0))
    axes = figure.add_subplot()
    top = float(max(binned["sigma"].max(), binned["rms_error"].max())) * 1.05
    line = np.array([0.0, top])
    axes.plot(line, line, color="black", linewidth=1, label="calibrated RMS: y = σ")
    axes.plot(line, np.sqrt(2 / np.pi) * line, color="grey", linewidth=1, linestyle="--",
              label="calibrated mean |error|: y = √(2/π) σ")
    axes.plot(binned["sigma"], binned["rms_error"], "o-", label="observed RMS error")
    axes.plot(binned["sigma"], binned["mean_abs_error"], "s-", label="observed mean |error|")
    axes.set(xlabel="predicted σ (bin mean)", ylabel="observed error in the bin",
             xlim=(0, top), ylim=(0, top),
             title=_heading(title, f"σ calibration, {len(binned['count'])} bins of "
                                   f"~{int(np.median(binned['count']))} rows"))
    axes.grid(alpha=GRID_ALPHA)
    axes.legend(loc="upper left", fontsize=8)
    return figure
