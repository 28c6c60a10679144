"""Reopening an existing MLflow run by id, whichever experiment this process has active."""

from __future__ import annotations

import mlflow


def start_existing_run(run_id: str, **kwargs):
    """`mlflow.start_run(run_id=run_id, **kwargs)`, after making the run's own experiment the
    active one → the ActiveRun.

    MLflow refuses to reopen a run of an experiment other than the one `set_experiment` made
    active earlier in the process ("active experiment ID does not match environment run ID"):
    a notebook that set an experiment, or a compare or test that used another store, would
    otherwise break a resume, a landscape of an old run or a tuned compare's study run.
    """
    experiment_id = mlflow.MlflowClient().get_run(run_id).info.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return mlflow.start_run(run_id=run_id, **kwargs)
