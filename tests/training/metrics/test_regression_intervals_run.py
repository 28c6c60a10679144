"""A pinball and a Gaussian-NLL run on diabetes log their interval metrics and figures: the
logged test values are recomputed here by explicit loops from the run's own test outputs."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pytest

from training.config import parse_overrides
from training.run.trainer import train

pytestmark = pytest.mark.slow


def _run(tmp_path, loss: str, *extra: str):
    config = parse_overrides([f"loss={loss}", "dataset=diabetes", "model=linear", "epochs=1",
                              f"checkpoint_dir={tmp_path / 'ckpt'}", *extra])
    result = train(config, log_model=False)
    run_id = result["run_id"]
    metrics = mlflow.MlflowClient().get_run(run_id).data.metrics
    path = mlflow.artifacts.download_artifacts(run_id=run_id,
                                               artifact_path="eval/test_outputs.npz",
                                               dst_path=str(tmp_path))
    with np.load(path) as data:
        outputs, y = data["outputs"].astype(float), data["targets"].astype(float)
    plots = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "plots")}
    return metrics, outputs, y, plots


def test_pinball_run_logs_interval_metrics(mlflow_store, tmp_path):
    metrics, q, y, plots = _run(tmp_path, "pinball", "quantiles=0.1,0.5,0.9")
    assert q.shape == (len(y), 3)
    for k, (tau, name) in enumerate([(0.1, "q10"), (0.5, "q50"), (0.9, "q90")]):
        loop = sum(max(tau * (y[i] - q[i, k]), (tau - 1) * (y[i] - q[i, k]))
                   for i in range(len(y))) / len(y)
        assert metrics[f"test/pinball_{name}"] == pytest.approx(loop, rel=1e-5)
    covered = sum(q[i, 0] <= y[i] <= q[i, 2] for i in range(len(y))) / len(y)
    width = sum(q[i, 2] - q[i, 0] for i in range(len(y))) / len(y)
    assert metrics["test/interval_coverage"] == pytest.approx(covered)
    assert metrics["test/interval_width"] == pytest.approx(width, rel=1e-5)
    assert "val/interval_coverage" in metrics
    assert {"plots/predictions.png", "plots/residuals.png"} <= plots
    assert "plots/sigma_calibration.png" not in plots


def test_gaussian_run_logs_nll_coverage_and_calibration(mlflow_store, tmp_path):
    metrics, head, y, plots = _run(tmp_path, "gaussian_nll", "beta=0")
    nll = covered = 0.0
    for i in range(len(y)):
        var = max(math.exp(head[i, 1]), 1e-6)
        nll += 0.5 * math.log(2 * math.pi * var) + (y[i] - head[i, 0]) ** 2 / (2 * var)
        covered += abs(y[i] - head[i, 0]) <= 1.6448536 * math.sqrt(var)
    assert metrics["test/nll"] == pytest.approx(nll / len(y), rel=1e-5)
    assert metrics["test/coverage_90"] == pytest.approx(covered / len(y))
    assert {"plots/predictions.png", "plots/residuals.png",
            "plots/sigma_calibration.png"} <= plots
