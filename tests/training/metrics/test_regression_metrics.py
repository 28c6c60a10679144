"""rmse, mae, r2 and median_ae against explicit loops and hand values, weighted and not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics.regression import point_prediction, regression_metrics


def loops(pred, y, w):
    total = sum(w)
    sq = sum(wi * (p - t) ** 2 for p, t, wi in zip(pred, y, w, strict=True))
    ab = sum(wi * abs(p - t) for p, t, wi in zip(pred, y, w, strict=True))
    mean = sum(wi * t for t, wi in zip(y, w, strict=True)) / total
    spread = sum(wi * (t - mean) ** 2 for t, wi in zip(y, w, strict=True))
    return {"rmse": math.sqrt(sq / total), "mae": ab / total, "r2": 1 - sq / spread}


def test_hand_values():
    # errors 1, -2, 0, 3: mse 14/4, mae 6/4; y mean 2.5, spread 5; |e| sorted 0 1 2 3 → 1.5
    got = regression_metrics([2.0, 0.0, 3.0, 7.0], [1.0, 2.0, 3.0, 4.0])
    assert got["rmse"] == pytest.approx(math.sqrt(3.5))
    assert got["mae"] == pytest.approx(1.5)
    assert got["r2"] == pytest.approx(1 - 14 / 5)
    assert got["median_ae"] == pytest.approx(1.5)


@pytest.mark.parametrize("weighted", [False, True])
def test_against_loops(weighted):
    rng = np.random.default_rng(0)
    y = rng.normal(size=101)
    pred = y + rng.standard_t(3, size=101)
    w = rng.uniform(0, 3, size=101) if weighted else np.ones(101)
    got = regression_metrics(pred, y, w if weighted else None)
    want = loops(pred.tolist(), y.tolist(), w.tolist())
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12)
    errors = sorted(zip(np.abs(pred - y).tolist(), w.tolist(), strict=True))
    half, acc, median = sum(w) / 2, 0.0, None
    for error, weight in errors:  # the smallest |e| whose cumulative weight reaches half
        acc += weight
        if acc >= half:
            median = error
            break
    assert got["median_ae"] == pytest.approx(median if weighted
                                             else np.median(np.abs(pred - y)))


def test_perfect_and_zero_weight_rows():
    got = regression_metrics([1.0, 2.0, 9.0], [1.0, 2.0, 3.0], [1.0, 1.0, 0.0])
    assert got == {"rmse": 0.0, "mae": 0.0, "r2": 1.0, "median_ae": 0.0}
    with pytest.raises(ValueError, match="positive weight"):
        regression_metrics([1.0], [1.0], [0.0])
    with pytest.raises(ValueError, match="differ in shape"):
        regression_metrics([1.0, 2.0], [1.0])


def test_point_prediction_of_each_output():
    out = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert point_prediction(out[:, :1], "value").tolist() == [1.0, 4.0]
    assert point_prediction(out, "quantiles", (0.1, 0.5, 0.9)).tolist() == [2.0, 5.0]
    assert point_prediction(out[:, :2], "mean_logvar").tolist() == [1.0, 4.0]
