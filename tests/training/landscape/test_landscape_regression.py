"""`make landscape RUN=<id>` on a regression run rebuilds the model with its training split's
feature and target statistics: the centre loss is the trained model's training MSE."""

from __future__ import annotations

import numpy as np
import pytest

from training.config import parse_overrides
from training.landscape.closed_form import linear_head
from training.landscape.from_run import landscape_of_run
from training.landscape.ridge import ModelAtEnd
from training.run.builders import build_splits
from training.run.trainer import train


@pytest.mark.slow
def test_landscape_of_a_linear_regression_run(mlflow_store, tmp_path):
    config = parse_overrides(["dataset=diabetes", "model=linear", "loss=mse", "epochs=2",
                              "l2=0.01", f"checkpoint_dir={tmp_path}"])
    keep = ModelAtEnd()
    run_id = train(config, callbacks=[keep], log_model=False)["run_id"]
    splits = build_splits(config)
    predicted = np.asarray(keep.model(splits.x_train, training=False), np.float64)[:, 0]
    kernel = np.asarray(linear_head(keep.model).dense.kernel, np.float64)
    want = np.mean((predicted - splits.y_train) ** 2) + 0.01 * np.sum(kernel**2)
    landscape = landscape_of_run(run_id, points=3)
    assert landscape.center_loss == pytest.approx(want, rel=1e-4)
