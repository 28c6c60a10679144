"""A linear regression run on diabetes: the trainer's curvature (curvature=true) equals the
closed form, and `make landscape RUN=<id>` rebuilds the model with its training split's
feature and target statistics (the centre loss is the trained model's training MSE)."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from training.config import parse_overrides
from training.landscape.closed_form import closed_form_of_model, linear_head
from training.landscape.from_run import landscape_of_run
from training.landscape.ridge import ModelAtEnd
from training.run.builders import build_splits
from training.run.trainer import train


@pytest.mark.slow
def test_landscape_of_a_linear_regression_run(mlflow_store, tmp_path):
    config = parse_overrides(["dataset=diabetes", "model=linear", "loss=mse", "epochs=2",
                              "l2=0.01", "curvature=true", f"checkpoint_dir={tmp_path}"])
    keep = ModelAtEnd()
    run_id = train(config, callbacks=[keep], log_model=False)["run_id"]
    splits = build_splits(config)
    predicted = np.asarray(keep.model(splits.x_train, training=False), np.float64)[:, 0]
    kernel = np.asarray(linear_head(keep.model).dense.kernel, np.float64)
    want = np.mean((predicted - splits.y_train) ** 2) + 0.01 * np.sum(kernel**2)
    logged = mlflow.MlflowClient().get_run(run_id).data.metrics
    closed = np.linalg.eigvalsh(closed_form_of_model(keep.model, splits.x_train, 0.01))
    assert logged["landscape/hessian_top1"] == pytest.approx(closed[-1], rel=0.01)
    assert logged["landscape/hessian_min"] == pytest.approx(closed[0], rel=0.01)
    landscape = landscape_of_run(run_id, points=3)
    assert landscape.center_loss == pytest.approx(want, rel=1e-4)
