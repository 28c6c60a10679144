"""`make tune`: an Optuna study over one loss's search space; every trial is a normal run.

    python -m training.tune loss=focal trials=20 dataset=digits epochs=5
    make tune LOSS=focal TRIALS=20 WORKERS=2

Keys: the tuner's own (`TUNE_KEYS`: trials, objective, pruner, study, workers, tune_keys) and
any `Config` key or loss argument, which every trial gets alike (`epochs=5`, `imbalance=10`).
A loss argument given on the line is fixed, not tuned.

- Search space: the loss's registry entry (`Arg.search` in `losses/catalog.py`), plus the
  shared settings named in `tune_keys=` with their `SHARED_RANGES`. Nothing else is tuned.
- Objective: a `val/` metric at the trial's last epoch, by default the task's selection metric
  (`config.SELECTION_METRIC`). Trials never evaluate the test split (`evaluate_test=False`).
- Sampler: TPE, seeded from the config seed and the trial number, so workers sharing a
  study do not draw the same start-up points, and one worker's study replays from its seed.
- Pruning (`pruner=median`, the default): Optuna's MedianPruner on the per-epoch objective,
  never before epoch `PRUNER_WARMUP_EPOCHS` or in the first `PRUNER_STARTUP_TRIALS` trials,
  and never at the last epoch (the trial is then fully trained: its value counts). A pruned
  trial stops cleanly: its MLflow run ends FINISHED with `losslab.pruned=true` and
  `losslab.stopped_epoch` (the trainer's tag); Optuna records it PRUNED.
- Budget: `trials` is the study's total over all its workers and re-runs: a worker stops when
  COMPLETE + PRUNED + RUNNING trials reach it. A FAIL does not count (a crashed, killed or
  diverged trial is redone), but a worker gives up after `MAX_FAILURES_IN_A_ROW` failures.
- Storage (`storage_location`): `OPTUNA_STORAGE` (an Optuna URL, postgresql://... or
  sqlite:///..., or a journal file path), else a journal file beside the MLflow store
  (`<repo>/optuna.journal` for the default store). A server store needs `OPTUNA_STORAGE`.
  Re-running the same command continues the study; other settings under the same study
  name are refused (exit 2): name another with `study=`.
- Workers: `workers=N` starts N local processes of this command with `workers=1` on the same
  study (one GPU each, round-robin, when GPUs are visible). More machines: run the same
  command on each with the same `OPTUNA_STORAGE` and tracking server. Ctrl-C or a crash of
  a worker loses only its running trial (FAIL in Optuna, KILLED in MLflow).

MLflow: one study run (tag `losslab.study=<name>`, params `study.*` and `search.*`) holds
every trial run (tags `losslab.study`, `losslab.trial=<number>`). When the study reaches its
total the study run gets params `best/<param>` and `best/trial`, metric `best/value`
(logged after every trial, step = trials finished), tag `losslab.best_params` (JSON) and the
figures `study/optimization_history.png`, `study/param_importances.png`,
`study/intermediate_values.png`; then it ends FINISHED. Under `make compare TUNE=N` the
study run is a child of the compare's parent run.

Keras, TensorFlow and MLflow are imported only by the functions that train or log, so
`--help` and the compare's parser read this module without them (Optuna itself is light).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import typing
import urllib.parse
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from training.cli import run_cli
from training.config import SELECTION_METRIC, Config, field_names, parse_overrides
from training.errors import ConfigError, RunKilled, TrackingError
from training.help import config_lines, keys_help, loss_arg_lines
from training.keyvalue import Key, pairs, parse_keys
from training.loss_catalog import catalog, import_plugins
from training.processes import run_workers
from training.tags import BEST_TAG, ERROR_TAG, PRUNED_TAG, STUDY_TAG, TRIAL_TAG

# --- settings ----------------------------------------------------------------------------

PRUNERS = ("median", "none")
# Built-in ranges of the shared settings `tune_keys=` may name; only those named are tuned.
SHARED_RANGES: dict[str, tuple] = {
    "learning_rate": ("log", 1e-4, 1e-2),
    "l2": ("log", 1e-6, 1e-2),
}
# The val metrics a run logs (keys of evaluate.classification_scores / retrieval_scores);
# the shot-group accuracies exist only for the groups the training split has.
OBJECTIVES = {
    "classification": ("balanced_accuracy", "accuracy", "macro_f1", "balanced_accuracy_posthoc",
                       "many_shot_accuracy", "medium_shot_accuracy", "few_shot_accuracy",
                       "ece", "loss"),
    "retrieval": ("map_at_r", "precision_at_1", "recall_at_5", "r_precision"),
}
MINIMIZED = ("ece", "loss")
# MedianPruner: 3 trials finish before any is pruned, none is pruned before epoch 2 (epoch
# 1 ranks hyperparameters by how fast they start, not where they end).
PRUNER_STARTUP_TRIALS = 3
PRUNER_WARMUP_EPOCHS = 2
MAX_FAILURES_IN_A_ROW = 3
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
REFUSED = ("resume", "run_name")  # set per trial
# How long a worker that found the study just created waits for its creator to record the
# study's MLflow run; then it records one itself (the creator died).
CREATOR_WAIT_S = 60.0
# RDB storages (PostgreSQL): a trial whose worker stopped beating for GRACE_S is failed by
# the next worker to start a trial (a machine that died, not just a process).
HEARTBEAT_S, GRACE_S = 60, 180

# Optuna user attributes: settings fingerprint and MLflow run of a study; worker and run of a trial.
SETTINGS_ATTR, RUN_ATTR, WORKER_ATTR = "losslab_settings", "losslab_run_id", "losslab_worker"

TUNE_KEYS = (
    Key("trials", int, 0, "the study's total number of trials, shared by all its workers",
        required=True),
    Key("objective", str, "", "a val/ metric at the last epoch (default: val/balanced_accuracy "
        "for classification, val/map_at_r for retrieval)"),
    Key("pruner", str, "median", "median (Optuna's MedianPruner on the per-epoch objective) "
        "| none"),
    Key("study", str, "", "study name (default: <loss>-<dataset>-<objective>); the same name "
        "continues the study"),
    Key("workers", int, 1, "local worker processes on the study (one GPU each when visible)"),
    Key("tune_keys", str, "", "shared settings to tune too, comma-separated (learning_rate, "
        "l2; ranges below)"),
)


def describe_range(search: tuple) -> str:
    """("log", 1e-4, 1e-2) → "log 0.0001..0.01"; ("choice", (a, b)) → "one of a, b"."""
    kind = search[0]
    if kind == "choice":
        return "one of " + ", ".join("none" if v is None else str(v) for v in search[1])
    return f"{kind} {search[1]:g}..{search[2]:g}"


@dataclasses.dataclass(frozen=True)
class TuneSettings:
    """One study: the base config every trial starts from and how the study runs.

    Attributes:
        config: the trials' base config (loss, dataset, epochs, shared settings, seed).
        trials: the study's total over all workers.
        objective: "val/<metric>".
        study: the Optuna study name; None = `<loss>-<dataset>-<objective>`.
        tune_keys: shared `Config` keys tuned besides the loss's arguments.
        argv: the command's words (workers re-run them).
    """

    config: Config
    trials: int
    objective: str
    pruner: str = "median"
    study: str | None = None
    workers: int = 1
    tune_keys: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()

    @property
    def metric(self) -> str:
        return self.objective.removeprefix("val/")

    @property
    def direction(self) -> str:
        return "minimize" if self.metric in MINIMIZED else "maximize"

    def study_name(self) -> str:
        if self.study:
            return self.study
        dataset = self.config.dataset
        if dataset.startswith("idx:"):
            dataset = "idx-" + dataset[4:].rstrip("/").rsplit("/", 1)[-1]
        return f"{self.config.loss}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', dataset)}-{self.objective}"

    def search_space(self) -> dict[str, tuple]:
        return search_space(self.config, self.tune_keys)

    def fingerprint(self) -> str:
        """What must not change when a study is continued: the trials' settings (tuned keys
        and per-run names left out), the search space, the objective and the pruner."""
        space = self.search_space()
        values = {k: v for k, v in self.config.to_dict().items()
                  if k not in space and k not in ("run_name", "checkpoint_dir", "resume",
                                                  "system_metrics")}
        return json.dumps({"config": values, "space": {k: list(v) for k, v in space.items()},
                           "objective": self.objective, "pruner": self.pruner},
                          sort_keys=True, default=str)


def search_space(config: Config, tune_keys: typing.Iterable[str] = ()) -> dict[str, tuple]:
    """name → range: the loss's tuned arguments not given on the line, then `tune_keys`."""
    space = {k: r for k, r in config.spec.search_space().items() if k not in config.loss_args}
    space.update({k: SHARED_RANGES[k] for k in tune_keys})
    return space


def parse_tune_keys(raw: str, fixed: typing.Iterable[str] = ()) -> tuple[str, ...]:
    """"learning_rate,l2" → ("learning_rate", "l2"); each must have a built-in range and must
    not also be set on the line (`fixed`)."""
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    valid = ", ".join(f"{k} ({describe_range(r)})" for k, r in SHARED_RANGES.items())
    for name in names:
        if name not in SHARED_RANGES:
            raise ConfigError(f"tune_keys: {name!r} has no built-in range; valid: {valid}")
        if name in fixed:
            raise ConfigError(f"{name} is both set ({name}=...) and tuned (tune_keys=); drop one")
    return names


def check_objective(objective: str, task: str) -> str:
    """The objective as "val/<metric>"; ConfigError for test/ or any non-val metric."""
    valid = ", ".join(f"val/{m}" for m in OBJECTIVES[task])
    if objective.startswith("test/"):
        raise ConfigError(f"objective={objective!r}: trials never read the test split; "
                          f"choose a val/ metric: {valid}")
    if objective.removeprefix("val/") not in OBJECTIVES[task] or not objective.startswith("val/"):
        raise ConfigError(f"objective={objective!r} is not a val/ metric of {task}; "
                          f"valid: {valid}")
    return objective


def nothing_to_tune(config: Config) -> str:
    """The message for a loss without a search space (and no tune_keys)."""
    given = [k for k in config.spec.search_space() if k in config.loss_args]
    fixed = f" (given on the line, so fixed: {', '.join(given)})" if given else ""
    tunable = [s.name for s in catalog().specs(config.task) if s.search_space()]
    return (f"{config.loss} has nothing to tune: its registry entry declares no search range"
            f"{fixed}; tune shared settings with tune_keys={','.join(SHARED_RANGES)}, or "
            f"another loss ({', '.join(tunable)})")


def parse_settings(argv: typing.Iterable[str]) -> TuneSettings:
    """`["loss=focal", "trials=20", "epochs=5"]` → TuneSettings. ConfigError (exit 2) naming
    the bad key or value and the valid choices."""
    argv = list(argv)
    own_names = {k.name for k in TUNE_KEYS}
    words = pairs(argv, [*own_names, "any config key or loss argument"])
    own = parse_keys([f"{k}={v}" for k, v in words if k in own_names], TUNE_KEYS)
    rest = [(k, v) for k, v in words if k not in own_names]
    for key, _ in rest:
        if key in REFUSED:
            raise ConfigError(f"{key} is set per trial by the tuner; trials are named "
                              "<loss>-trial<number>")
    try:
        config = parse_overrides([f"{k}={v}" for k, v in rest])
    except ConfigError as exc:
        if str(exc).startswith("unknown config key"):
            raise ConfigError(f"{exc}; tune keys: {', '.join(own_names)}") from None
        raise
    if own["trials"] < 1:
        raise ConfigError(f"trials={own['trials']} is out of range; valid: an integer >= 1")
    if own["workers"] < 1:
        raise ConfigError(f"workers={own['workers']} is out of range; valid: an integer >= 1")
    if own["pruner"] not in PRUNERS:
        raise ConfigError(f"pruner={own['pruner']!r} is not valid; choose one of: "
                          f"{', '.join(PRUNERS)}")
    tune_keys = parse_tune_keys(own["tune_keys"], fixed={k for k, _ in rest})
    objective = check_objective(own["objective"] or SELECTION_METRIC[config.task], config.task)
    settings = TuneSettings(config=config, trials=own["trials"], objective=objective,
                            pruner=own["pruner"], study=own["study"] or None,
                            workers=own["workers"], tune_keys=tune_keys, argv=tuple(argv))
    if not settings.search_space():
        raise ConfigError(nothing_to_tune(config))
    check_storage()
    return settings


# --- a trial's config ------------------------------------------------------------------------


def sample(trial: optuna.Trial, space: dict[str, tuple]) -> dict[str, typing.Any]:
    """One value per range: float, log (log-uniform float), int, choice."""
    values = {}
    for name, search in space.items():
        kind = search[0]
        if kind == "choice":
            values[name] = trial.suggest_categorical(name, list(search[1]))
        elif kind == "int":
            values[name] = trial.suggest_int(name, int(search[1]), int(search[2]))
        elif kind in ("float", "log"):
            values[name] = trial.suggest_float(name, float(search[1]), float(search[2]),
                                               log=kind == "log")
        else:
            raise ValueError(f"search range of {name!r}: kind {kind!r}; valid: float, log, int, "
                             "choice")
    return values


def apply_params(config: Config, params: dict[str, typing.Any]) -> Config:
    """`config` with sampled (or best) values: loss arguments into `loss_args`, shared keys
    set as fields."""
    fields_ = set(field_names())
    loss_args = {k: v for k, v in params.items() if k not in fields_}
    shared = {k: v for k, v in params.items() if k in fields_}
    return config.replace(loss_args={**config.loss_args, **loss_args}, **shared)


def _sampler(seed: int, number: int) -> optuna.samplers.TPESampler:
    """TPE seeded from (config seed, trial number): distinct start-up points per trial even
    when workers of one study share the config seed; reproducible for one worker."""
    return optuna.samplers.TPESampler(seed=(seed * 1_000_003 + number) % 2**32)


def _pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS,
                                       n_warmup_steps=PRUNER_WARMUP_EPOCHS)


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


# --- storage ---------------------------------------------------------------------------------


def storage_location(environ: typing.Mapping[str, str] | None = None,
                     tracking_uri: str | None = None) -> str:
    """`OPTUNA_STORAGE`, else the journal file beside the MLflow store: the folder of a
    sqlite:///path/x.db store (path/optuna.journal), the parent of a file store. A tracking
    server (or any other store) needs `OPTUNA_STORAGE`: ConfigError."""
    environ = os.environ if environ is None else environ
    explicit = environ.get("OPTUNA_STORAGE", "").strip()
    if explicit:
        return explicit
    if tracking_uri is None:
        from training.run import tracking  # noqa: PLC0415 (imports mlflow and keras)

        tracking_uri = tracking.tracking_uri()
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///").split("?")[0])
        return str(db.resolve().parent / "optuna.journal")
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:  # a file store folder
        folder = Path(urllib.parse.urlparse(tracking_uri).path or tracking_uri)
        return str(folder.resolve().parent / "optuna.journal")
    raise ConfigError(
        f"the MLflow store {redacted(tracking_uri)} is not a local file: set OPTUNA_STORAGE "
        "to a storage every worker reaches, e.g. OPTUNA_STORAGE=postgresql://user:pw@host/db "
        "(the tracking server's PostgreSQL) or a journal file on shared storage")


def check_storage(environ: typing.Mapping[str, str] | None = None) -> None:
    """ConfigError at parse time (nothing started) when the trials would have no storage:
    a tracking server without OPTUNA_STORAGE. Unset MLFLOW_TRACKING_URI: the local store."""
    environ = os.environ if environ is None else environ
    uri = environ.get("MLFLOW_TRACKING_URI", "")
    if uri:
        storage_location(environ, uri)


def redacted(location: str) -> str:
    """A storage URL without its password (for params, messages and logs)."""
    parts = urllib.parse.urlsplit(location)
    if not parts.password:
        return location
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def open_storage(location: str) -> optuna.storages.BaseStorage:
    """An Optuna URL → RDBStorage (with heartbeats: trials of dead machines are failed);
    a path → JournalStorage on that file (safe for processes on one machine)."""
    if "://" in location:
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    location, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=_close_stale_trial_run)
        except Exception as exc:  # noqa: BLE001 (driver errors vary: one line, exit 2)
            raise TrackingError(f"OPTUNA_STORAGE={redacted(location)} cannot be opened "
                                f"({type(exc).__name__}: {exc})") from None
    path = Path(location).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def _close_stale_trial_run(study: optuna.Study, trial) -> None:
    """Optuna failed a trial whose worker stopped beating: its MLflow run ends KILLED."""
    _close_trial_run(trial, "its worker stopped sending heartbeats")


def open_study(settings: TuneSettings, storage) -> tuple[optuna.Study, bool]:
    """The study (created, or loaded: then its settings must match) → (study, created)."""
    name = settings.study_name()
    try:
        study = optuna.create_study(storage=storage, study_name=name,
                                    direction=settings.direction,
                                    pruner=_pruner(settings.pruner))
        study.set_user_attr(SETTINGS_ATTR, settings.fingerprint())
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage,
                                  pruner=_pruner(settings.pruner))
    stored = _wait_for_attr(study, SETTINGS_ATTR)
    if stored is not None and stored != settings.fingerprint():
        raise ConfigError(f"study {name!r} exists with other settings "
                          f"({_difference(stored, settings.fingerprint())}); re-run it with "
                          "its own settings, or name a new one with study=NAME")
    return study, False


def _difference(stored: str, mine: str) -> str:
    old, new = json.loads(stored), json.loads(mine)
    flat_old = {**old.pop("config"), **old}
    flat_new = {**new.pop("config"), **new}
    changed = [f"{k}: {flat_old.get(k)!r} there, {flat_new.get(k)!r} here"
               for k in sorted(set(flat_old) | set(flat_new)) if flat_old.get(k) != flat_new.get(k)]
    return "; ".join(changed[:4])


def _wait_for_attr(study: optuna.Study, key: str, timeout: float = CREATOR_WAIT_S):
    """A study attribute its creator writes right after creating it: waited for while the
    study has no trial yet (None after `timeout`, or at once in a study with trials)."""
    if key in study.user_attrs or study.get_trials(deepcopy=False):
        return study.user_attrs.get(key)
    deadline = time.monotonic() + timeout
    while True:
        value = study.user_attrs.get(key)
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


# --- counting, and trials of workers that died -----------------------------------------------


def counted(study: optuna.Study, below: int | None = None) -> int:
    """Trials that use the budget (COMPLETE, PRUNED, RUNNING, WAITING), of numbers < `below`."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=COUNTED)
               if below is None or t.number < below)


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_workers_trials(study: optuna.Study) -> list[int]:
    """RUNNING trials of worker processes on this machine that no longer exist (killed with
    SIGKILL, out of memory): FAIL in Optuna, their MLflow runs KILLED. → their numbers.
    (On other machines: the RDB storage's heartbeat does the same.)"""
    host = socket.gethostname()
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner_host, _, pid = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
        if owner_host != host or not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        _close_trial_run(trial, f"worker process {pid} ended without closing it")
        reaped.append(trial.number)
    return reaped


def _close_trial_run(trial, why: str) -> None:
    run_id = trial.user_attrs.get(RUN_ATTR)
    if not run_id:
        return
    import mlflow  # noqa: PLC0415

    client = mlflow.MlflowClient()
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_tag(run_id, "losslab.status_reason", f"trial {trial.number}: {why}")
        client.set_terminated(run_id, "KILLED")


# --- the study's MLflow run ---------------------------------------------------------------


def study_run(study: optuna.Study, settings: TuneSettings, created: bool, location: str,
              parent_run_id: str | None = None) -> str:
    """The id of the study's MLflow run: created by the study's creator (nested under
    `parent_run_id`, a compare), looked up by everyone else; set RUNNING again if finished."""
    import mlflow  # noqa: PLC0415 (heavy)

    from training.run import tracking  # noqa: PLC0415

    uri = tracking.tracking_uri()
    tracking.check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    run_id = None if created else _wait_for_attr(study, RUN_ATTR)
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

    best = _best(study)
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
    best = _best(study)
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


def _best(study: optuna.Study):
    try:
        return study.best_trial
    except ValueError:  # no COMPLETE trial yet
        return None


# --- one worker ------------------------------------------------------------------------------


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
                  tags={STUDY_TAG: name, TRIAL_TAG: str(trial.number)})
        except (KeyboardInterrupt, RunKilled) as exc:
            raise _Interrupted(exc) from exc
        if report.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned after epoch {report.pruned_at}")
        return report.value

    status = None
    with _study_run_active(run_id) as close:
        try:
            failures = 0
            while True:
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
    return _result(study, run_id, settings)


def _clear_keras_session() -> None:
    """Drop the previous trial's graph and memory (Keras is loaded by then: the trainer)."""
    import keras  # noqa: PLC0415

    keras.utils.clear_session()


def _others_running(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


@contextlib.contextmanager
def _study_run_active(run_id: str):
    """Yields `close(status)`, which ends the study's run with `status` (None: leave it
    RUNNING, other workers are on it). Under a compare (an active run), the study's run is
    made the active run for the trials: `train(parent_run_id=...)` must name the active run."""
    import mlflow  # noqa: PLC0415

    nested = mlflow.active_run() is not None
    if nested:
        mlflow.start_run(run_id=run_id, nested=True)

    def close(status: str | None) -> None:
        if nested:
            mlflow.end_run(status or "KILLED")
        elif status is not None:
            mlflow.MlflowClient().set_terminated(run_id, status)

    yield close


def _result(study: optuna.Study, run_id: str, settings: TuneSettings) -> StudyResult:
    best = _best(study)

    def n(state):
        return len(study.get_trials(deepcopy=False, states=(state,)))

    return StudyResult(
        name=settings.study_name(), run_id=run_id,
        best_params=None if best is None else dict(best.params),
        best_value=None if best is None else best.value,
        best_trial=None if best is None else best.number,
        complete=n(TrialState.COMPLETE), pruned=n(TrialState.PRUNED), failed=n(TrialState.FAIL),
        running=n(TrialState.RUNNING),
        done=finished(study) >= settings.trials,
    )


# --- local workers ---------------------------------------------------------------------------


def visible_gpus(environ: typing.Mapping[str, str] | None = None) -> list[str]:
    """GPU ids for CUDA_VISIBLE_DEVICES: the caller's own list if set, else nvidia-smi's."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        ids = [g.strip() for g in environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
        return [] if ids in ([], ["-1"]) else ids
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def worker_env(index: int, gpus: list[str], location: str,
               environ: typing.Mapping[str, str] | None = None) -> dict[str, str]:
    """Worker `index`'s environment: one GPU round-robin (none visible: unchanged) and the
    storage the launcher resolved, so every worker opens the same study. GPU memory grows on
    demand: TensorFlow would otherwise take a whole GPU per process, and with more workers
    than GPUs the second on a GPU would fail."""
    env = dict(os.environ if environ is None else environ)
    env["OPTUNA_STORAGE"] = location
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
        env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    return env


def worker_command(settings: TuneSettings) -> list[str]:
    """`python -m training.tune <the same words> workers=1 study=<name>`."""
    words = [w for w in settings.argv
             if w.partition("=")[0].strip().replace("-", "_") not in ("workers", "study")]
    return [sys.executable, "-m", "training.tune", *words, "workers=1",
            f"study={settings.study_name()}"]


class WorkersFailed(RuntimeError):
    """Some local workers exited with an error; the others finished their share."""


def launch(settings: TuneSettings) -> StudyResult:
    """Start `settings.workers` local workers on the study and wait for all of them.

    The study and its MLflow run are made here first (so workers find them, and bad settings
    exit 2 before any worker starts). A worker that fails does not stop the others; Ctrl-C /
    SIGTERM is forwarded to every worker, each of which closes its running trial.
    """
    location = storage_location()
    study, created = open_study(settings, open_storage(location))
    run_id = study_run(study, settings, created, location)
    fail_dead_workers_trials(study)
    gpus = visible_gpus()
    command = worker_command(settings)
    where = f"GPUs {', '.join(gpus)} round-robin" if gpus else "CPU"
    print(f"starting {settings.workers} workers on study {settings.study_name()!r} ({where}); "
          f"storage {redacted(location)}", flush=True)
    envs = [worker_env(index, gpus, location) for index in range(settings.workers)]
    # Own sessions: a terminal's Ctrl-C reaches the launcher only, which forwards it once.
    codes = run_workers(command, envs, lambda procs: [proc.wait() for proc in procs],
                        own_session=True)
    result = _result(study, run_id, settings)
    if 130 in codes:
        raise KeyboardInterrupt
    if 143 in codes:
        raise RunKilled("SIGTERM")
    if any(codes):
        listed = ", ".join(f"worker {i}: exit {c}" for i, c in enumerate(codes) if c)
        if not result.done:
            raise WorkersFailed(f"{listed}; {result.describe(settings)}")
        print(f"warning: {listed}; the other workers completed the study", file=sys.stderr)
    return result


def tune(settings: TuneSettings) -> StudyResult:
    """`make tune`: this process as the one worker, or `workers` local workers."""
    result = launch(settings) if settings.workers > 1 else run_study(settings)
    print(result.describe(settings), flush=True)
    return result


# --- command line --------------------------------------------------------------------------

USAGE = ("usage: python -m training.tune loss=NAME trials=N [key=value ...]   "
         "(make tune LOSS=focal TRIALS=20 ARGS=\"epochs=5\")")


def tune_help(argv: list[str]) -> str:
    given = dict(pairs(argv))
    import_plugins(given.get("plugins"))
    spaces = []
    for spec in catalog().specs():
        space = spec.search_space()
        shown = "; ".join(f"{k} {describe_range(r)}" for k, r in space.items())
        spaces.append(f"  {spec.name:<22} {shown or '(nothing to tune: use tune_keys=)'}")
    shared = [f"  {k:<22} {describe_range(r)}" for k, r in SHARED_RANGES.items()]
    return "\n".join([
        keys_help(USAGE, TUNE_KEYS),
        "",
        "Shared settings tune_keys= can name (tuned only when named):",
        *shared,
        "",
        "Config keys, the same for every trial (run_name and resume are set per trial):",
        *config_lines(skip=REFUSED),
        "",
        "Search spaces (registry entries; a loss argument given on the line is fixed):",
        *spaces,
        "",
        *loss_arg_lines(given.get("loss") or Config.loss),
        "",
        "Storage: OPTUNA_STORAGE=postgresql://... | sqlite:///... | a journal file path; "
        "default: optuna.journal beside the MLflow store.",
        "Exit codes: 0 done, 1 trials or workers failed, 2 bad input (nothing started), "
        "130/143 interrupted (the running trial is FAIL; re-run to continue).",
    ])


def _show(settings: TuneSettings) -> str:
    space = ", ".join(f"{k} {describe_range(r)}" for k, r in settings.search_space().items())
    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    return (f"study {settings.study_name()!r}: {settings.trials} trials of "
            f"{settings.config.loss} on {settings.config.dataset}, {settings.config.epochs} "
            f"epochs each, {settings.objective} ({settings.direction}), pruner "
            f"{settings.pruner}{workers}; space: {space}")


def main(argv: list[str] | None = None) -> int:
    return run_cli(tune, sys.argv[1:] if argv is None else argv, resolve=parse_settings,
                   help_text=tune_help, show=_show)
