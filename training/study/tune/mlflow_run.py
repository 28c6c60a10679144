"""The study's MLflow run: made by the study's creator (params `study.*`, `search.*`), found
by every other worker; `best/value` after each trial; best/* and the figures once complete.

MLflow and matplotlib are imported by the functions that log (see the package)."""

from __future__ import annotations

import contextlib
import json
import warnings

import optuna
from optuna.trial import TrialState

from training.study.tune.settings import TuneSettings, describe_range
from training.study.tune.storage import RUN_ATTR, best_or_none, finished, redacted, wait_for_attr
from training.tags import BEST_TAG, STUDY_TAG


def study_run(study: optuna.Study, settings: TuneSettings, created: bool, location: str,
              parent_run_id: str | None = None) -> str:
    """The id of the study's MLflow run: created by the study's creator (nested under
    `parent_run_id`, a compare), looked up by everyone else; set RUNNING again if finished."""
    import mlflow  # noqa: PLC0415 (heavy)

    from training.run import tracking  # noqa: PLC0415

    uri = tracking.tracking_uri()
    client = tracking.open_store(uri)  # created or migrated under its lock
    run_id = None if created else wait_for_attr(study, RUN_ATTR)
    if run_id is not None:
        if client.get_run(run_id).info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, "losslab.trials", str(settings.trials))
        return run_id
    config = settings.config
    experiment_id = tracking.ensure_experiment(tracking.experiment_name(config), uri)
    name = settings.study_name()
    tags = {STUDY_TAG: name, "losslab.loss": config.loss, "losslab.dataset": config.dataset,
            "losslab.trials": str(settings.trials),
            "mlflow.note.content": (
                f"Optuna study **{name}**: {config.loss} on {config.dataset}, "
                f"{settings.objective} ({settings.direction}) at the last of {config.epochs} "
                f"epochs, {settings.trials} trials, pruner {settings.pruner}. Trials are its "
                "child runs; best/* once the study is complete. Continue or extend it: the "
                "same `make tune` command (TRIALS= is the total).")}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, run_name=f"study-{config.loss}", tags=tags)
    params = {"study.name": name, "study.loss": config.loss, "study.dataset": config.dataset,
              "study.trials": settings.trials, "study.objective": settings.objective,
              "study.direction": settings.direction, "study.pruner": settings.pruner,
              "study.sampler": "tpe", "study.seed": config.seed, "study.epochs": config.epochs,
              "study.storage": redacted(location),
              **{f"search.{k}": describe_range(r) for k, r in settings.search_space().items()}}
    client.log_batch(run.info.run_id, params=[
        mlflow.entities.Param(k, str(v)) for k, v in params.items()])
    client.log_text(run.info.run_id, config.to_json(), "base_config.json")
    study.set_user_attr(RUN_ATTR, run.info.run_id)
    return run.info.run_id


def log_progress(study: optuna.Study, run_id: str) -> None:
    """Metric best/value at step = trials finished, and the best-so-far tag."""
    import mlflow  # noqa: PLC0415

    best = best_or_none(study)
    if best is None:
        return
    client = mlflow.MlflowClient()
    client.log_metric(run_id, "best/value", best.value, step=finished(study))
    client.set_tag(run_id, BEST_TAG, json.dumps(
        {"params": best.params, "value": best.value, "trial": best.number}, default=str))
    if best.user_attrs.get(RUN_ATTR):
        client.set_tag(run_id, "losslab.best_run", best.user_attrs[RUN_ATTR])


def log_summary(study: optuna.Study, run_id: str) -> None:
    """The complete study's run: params best/<param> and best/trial (MLflow params are
    immutable: an extended study whose best changed keeps them and says so; the tag
    `losslab.best_params` is always current) and the figures."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import mlflow  # noqa: PLC0415

    client = mlflow.MlflowClient()
    best = best_or_none(study)
    if best is not None:
        wanted = {f"best/{k}": "none" if v is None else str(v) for k, v in best.params.items()}
        wanted["best/trial"] = str(best.number)
        logged = client.get_run(run_id).data.params
        new = {k: v for k, v in wanted.items() if k not in logged}
        if new:
            client.log_batch(run_id, params=[mlflow.entities.Param(k, v) for k, v in new.items()])
        if any(logged.get(k, v) != v for k, v in wanted.items()):
            print(f"note: the best trial is now {best.number}; MLflow params cannot change, so "
                  f"best/* keep the first completion's; tag {BEST_TAG} has the current best",
                  flush=True)
    plots = optuna.visualization.matplotlib
    figures = {"study/optimization_history.png": plots.plot_optimization_history,
               "study/intermediate_values.png": plots.plot_intermediate_values}
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= 2:
        figures["study/param_importances.png"] = plots.plot_param_importances
    for path, plot in figures.items():
        with warnings.catch_warnings():  # experimental API; importances of few trials
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)
            try:
                axes = plot(study)
            except (ValueError, RuntimeError, ImportError) as exc:  # e.g. constant params
                print(f"note: {path} not drawn ({type(exc).__name__}: {exc})", flush=True)
                continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.tight_layout()
        client.log_figure(run_id, figure, path)
        plt.close(figure)


@contextlib.contextmanager
def study_run_active(run_id: str):
    """Yields `close(status)`, which ends the study's run with `status` (None: leave it
    RUNNING, other workers are on it). Under a compare (an active run), the study's run is
    made the active run for the trials: `train(parent_run_id=...)` must name the active run."""
    import mlflow  # noqa: PLC0415

    from training.reopen import start_existing_run  # noqa: PLC0415 (imports MLflow too)

    nested = mlflow.active_run() is not None
    if nested:
        start_existing_run(run_id, nested=True)

    def close(status: str | None) -> None:
        if nested:
            mlflow.end_run(status or "KILLED")
        elif status is not None:
            mlflow.MlflowClient().set_terminated(run_id, status)

    yield close
