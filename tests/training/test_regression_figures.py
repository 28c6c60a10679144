"""Regression figures: the artists carry the values computed here by hand or by a loop."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from training.plots.regression import (
    MAX_POINTS,
    prediction_scatter,
    residuals,
    sigma_calibration_figure,
)


def _renders(figure: Figure) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prediction_scatter_points_diagonal_and_rmse():
    y, p = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 5.0])
    figure = prediction_scatter(y, p[:, None], "mse on diabetes")
    (axes,) = figure.axes
    np.testing.assert_allclose(axes.collections[0].get_offsets(), np.c_[y, p])
    (diagonal,) = axes.get_lines()
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata()) == [1.0, 5.0]
    rmse = np.sqrt((0.25 + 0 + 1 + 1) / 4)  # 0.75
    assert f"RMSE {rmse:.4g}" in axes.get_title() and axes.get_title().startswith("mse on")
    _renders(figure)


def test_residuals_are_target_minus_prediction():
    y, p = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 1.0])
    figure = residuals(y, p, "t")
    left, right = figure.axes
    np.testing.assert_allclose(left.collections[0].get_offsets(), [[2, -1], [2, 0], [1, 2]])
    assert sum(bar.get_width() for bar in right.patches) == 3  # every residual in the histogram
    assert right.get_title() == f"mean {1 / 3:+.3g}, sd {np.std([-1, 0, 2]):.3g}"
    _renders(figure)


def test_big_sets_are_subsampled_and_mismatches_named():
    rng = np.random.default_rng(0)
    y = rng.normal(size=MAX_POINTS + 10)
    (axes,) = prediction_scatter(y, y).axes
    assert len(axes.collections[0].get_offsets()) == MAX_POINTS
    with pytest.raises(ValueError, match="got 3 and 2"):
        residuals(np.zeros(3), np.zeros(2))


def test_sigma_calibration_figure_draws_the_bins():
    # two bins by σ: {0.5, 0.5} with errors {1, −1}, {2, 2} with errors {0, 4}
    sigma = np.array([2.0, 0.5, 2.0, 0.5])
    error = np.array([0.0, 1.0, 4.0, -1.0])
    figure = sigma_calibration_figure(sigma, error, bins=2)
    (axes,) = figure.axes
    ideal, half_normal, rms, mean_abs = axes.get_lines()
    assert list(rms.get_xdata()) == [0.5, 2.0]
    assert list(rms.get_ydata()) == pytest.approx([1.0, np.sqrt(8.0)])
    assert list(mean_abs.get_ydata()) == pytest.approx([1.0, 2.0])
    assert half_normal.get_ydata()[1] == pytest.approx(np.sqrt(2 / np.pi) * ideal.get_ydata()[1])
    _renders(figure)
