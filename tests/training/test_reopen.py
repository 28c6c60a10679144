"""Reopening a run by id works whichever experiment the process made active before."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from training.reopen import start_existing_run


def test_a_run_of_another_experiment_reopens_where_plain_start_run_refuses(mlflow_store):
    mlflow.set_experiment("first")
    with mlflow.start_run() as run:
        mlflow.log_metric("x", 1.0, step=1)
    mlflow.set_experiment("second")  # what a notebook or an earlier compare leaves behind
    with pytest.raises(MlflowException, match="active experiment ID does not match"):
        mlflow.start_run(run_id=run.info.run_id)
    with start_existing_run(run.info.run_id) as reopened:
        assert reopened.info.run_id == run.info.run_id
        mlflow.log_metric("x", 2.0, step=2)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "x")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 2.0)]
    assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == "FINISHED"
