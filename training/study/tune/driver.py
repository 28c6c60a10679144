"""One worker on a study: `run_study` asks Optuna for trials and trains each as a normal run
under the study's MLflow run until the study has its total; `trial_callback` reports the
objective per epoch and stops a pruned trial.

Keras, TensorFlow and MLflow are imported by the functions that train (see the package)."""

from __future__ import annotations

import dataclasses
import os
import socket
import typing

import optuna
from optuna.trial import TrialState

from training.cli import stop_requested
from training.errors import ConfigError, RunKilled
from training.study.tune.mlflow_run import log_progress, log_summary, study_run, study_run_active
from training.study.tune.settings import TuneSettings, apply_params, sample
from training.study.tune.storage import (
    RUN_ATTR,
    WORKER_ATTR,
    best_or_none,
    counted,
    fail_dead_workers_trials,
    finished,
    open_storage,
    open_study,
    storage_location,
)
from training.tags import ERROR_TAG, PRUNED_TAG, STUDY_TAG, TRIAL_TAG

MAX_FAILURES_IN_A_ROW = 3


@dataclasses.dataclass(frozen=True)
class StudyResult:
    """Where a study stands after this worker: best trial and counts over all workers."""

    name: str
    run_id: str
    best_params: dict[str, typing.Any] | None
    best_value: float | None
    best_trial: int | None
    complete: int
    pruned: int
    failed: int
    running: int  # by other workers
    done: bool  # COMPLETE + PRUNED reached the total

    def describe(self, settings: TuneSettings) -> str:
        counts = f"{self.complete} complete, {self.pruned} pruned, {self.failed} failed"
        best = "no finished trial yet"
        if self.best_params is not None:
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in self.best_params.items())
            best = f"best {settings.objective} {self.best_value:.4f} at trial {self.best_trial}: {shown}"
        state = ("complete" if self.done else f"not complete: {self.running} trials running "
                 "in other workers" if self.running else
                 "not complete (re-run the same command to continue)")
        return f"study {self.name!r} {state}: {counts}; {best}; MLflow run {self.run_id}"

    @classmethod
    def from_study(cls, study: optuna.Study, run_id: str, settings: TuneSettings) -> StudyResult:
        best = best_or_none(study)

        def n(state):
            return len(study.get_trials(deepcopy=False, states=(state,)))

        return cls(
            name=settings.study_name(), run_id=run_id,
            best_params=None if best is None else dict(best.params),
            best_value=None if best is None else best.value,
            best_trial=None if best is None else best.number,
            complete=n(TrialState.COMPLETE), pruned=n(TrialState.PRUNED),
            failed=n(TrialState.FAIL), running=n(TrialState.RUNNING),
            done=finished(study) >= settings.trials,
        )


def _fmt(value) -> str:
    return "none" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


class _OverBudget(Exception):
    """Another worker started the study's last trial between our count and our ask."""


class _Interrupted(Exception):
    """Carries Ctrl-C / SIGTERM through Optuna (which marks the trial FAIL) to the worker."""

    def __init__(self, original: BaseException):
        super().__init__(repr(original))
        self.original = original


class TrialsFailing(RuntimeError):
    """A worker's trials failed MAX_FAILURES_IN_A_ROW times in a row."""


def run_study(settings: TuneSettings, *, parent_run_id: str | None = None) -> StudyResult:
    """Run trials of the study in this process until the study has its total. → StudyResult.

    `parent_run_id`: the compare whose child the study's run is (created by the first worker).
    """
    import mlflow  # noqa: PLC0415

    from training.run.trainer import train  # noqa: PLC0415 (TensorFlow, imported quietly)

    location = storage_location()
    study, created = open_study(settings, open_storage(location))
    run_id = study_run(study, settings, created, location, parent_run_id)
    space, config, name = settings.search_space(), settings.config, settings.study_name()
    monitor = "val_" + settings.metric
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: optuna.Trial) -> float:
        if counted(study, below=trial.number) >= settings.trials:
            raise _OverBudget(f"the study has its {settings.trials} trials")
        trial.set_user_attr(WORKER_ATTR, worker)
        study.sampler = _sampler(config.seed, trial.number)  # samples at suggest_* below
        trial_config = apply_params(config, sample(trial, space)).replace(
            run_name=f"{config.loss.rsplit(':', 1)[-1]}-trial{trial.number}")
        report = trial_callback(trial, monitor, prune=settings.pruner != "none",
                                epochs=trial_config.epochs)
        _clear_keras_session()
        try:
            train(trial_config, parent_run_id=run_id, callbacks=[report], evaluate_test=False,
                  log_model=False, tags={STUDY_TAG: name, TRIAL_TAG: str(trial.number)})
        except (KeyboardInterrupt, RunKilled) as exc:
            # A trial is not resumed with RESUME=: the study redoes it (the CLI's note).
            exc.losslab_hint = (f"trial {trial.number} will be redone: rerun the same make "
                                "tune command to continue the study")
            raise _Interrupted(exc) from exc
        if report.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned after epoch {report.pruned_at}")
        return report.value

    status = None
    with study_run_active(run_id) as close:
        try:
            failures = 0
            while True:
                if stop_requested():  # a SIGTERM whose RunKilled a library swallowed
                    raise RunKilled("SIGTERM")
                fail_dead_workers_trials(study)
                if counted(study) >= settings.trials:
                    break
                try:
                    study.optimize(objective, n_trials=1, catch=())
                    failures = 0
                except _OverBudget:
                    break
                except _Interrupted as exc:
                    raise exc.original from None
                except Exception as exc:
                    failures += 1
                    if failures >= MAX_FAILURES_IN_A_ROW:
                        raise TrialsFailing(f"{failures} trials in a row failed, the last with "
                                            f"{type(exc).__name__}: {exc}") from exc
                log_progress(study, run_id)
            if finished(study) >= settings.trials:
                log_summary(study, run_id)
                status = "FINISHED"
        except (KeyboardInterrupt, RunKilled):
            status = None if _others_running(study) else "KILLED"
            raise
        except BaseException as exc:
            if not _others_running(study):
                status = "FAILED"
                mlflow.MlflowClient().set_tag(run_id, ERROR_TAG,
                                              f"{type(exc).__name__}: {exc}"[:5000])
            raise
        finally:
            close(status)
    return StudyResult.from_study(study, run_id, settings)


def _clear_keras_session() -> None:
    """Drop the previous trial's graph and memory (Keras is loaded by then: the trainer)."""
    import keras  # noqa: PLC0415

    keras.utils.clear_session()


def _others_running(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _sampler(seed: int, number: int) -> optuna.samplers.TPESampler:
    """TPE seeded from (config seed, trial number): distinct start-up points per trial even
    when workers of one study share the config seed; reproducible for one worker."""
    return optuna.samplers.TPESampler(seed=(seed * 1_000_003 + number) % 2**32)


def trial_callback(trial: optuna.Trial, monitor: str, *, prune: bool, epochs: int):
    """A Keras callback for `train(callbacks=...)`: reports `logs[monitor]` (e.g.
    "val_balanced_accuracy") to Optuna at every epoch end (step = epoch from 1) and, when the
    pruner says so before the last epoch, tags the run `losslab.pruned=true` and stops
    training after this epoch. `.value`: the last reported value; `.pruned_at`: the epoch.

    Defined here, not at module level, so that Keras is imported only when trials run.
    """
    import keras  # noqa: PLC0415 (TensorFlow: only when training)
    import mlflow  # noqa: PLC0415

    class ReportToOptuna(keras.callbacks.Callback):
        value: float | None = None
        pruned_at: int | None = None

        def on_train_begin(self, logs=None):
            run = mlflow.active_run()  # the trial's run (the trainer opened it)
            if run is not None:
                trial.set_user_attr(RUN_ATTR, run.info.run_id)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if monitor not in logs:
                logged = ", ".join(sorted(k for k in logs if k.startswith("val_"))) or "none"
                raise ConfigError(f"objective {monitor!r} is not logged by this run "
                                  f"(logged: {logged})")
            self.value = float(logs[monitor])
            trial.report(self.value, step=epoch + 1)
            if prune and epoch + 1 < epochs and trial.should_prune():
                self.pruned_at = epoch + 1
                mlflow.set_tag(PRUNED_TAG, "true")
                self.model.stop_training = True  # the run then ends FINISHED, not FAILED

    return ReportToOptuna()
