"""Where a study lives and who still works on it: the storage (`OPTUNA_STORAGE`, else a
journal beside the MLflow store), the study opened there (refused if its settings differ),
the trials that use the budget, and the RUNNING trials of workers that died.

MLflow is imported only by the function that closes a dead trial's run (see the package)."""

from __future__ import annotations

import json
import os
import socket
import time
import typing
import urllib.parse
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from training.errors import ConfigError, TrackingError
from training.reachable import (
    DEFAULT_URI,
    check_folder,
    check_store,
    local_path,
    redact,
    scrub,
    store_lock,
)
from training.reachable import tracking_uri as current_tracking_uri

if typing.TYPE_CHECKING:
    from training.study.tune.settings import TuneSettings

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
# How long a worker that found the study just created waits for its creator to record the
# study's MLflow run; then it records one itself (the creator died).
CREATOR_WAIT_S = 60.0
# RDB storages (PostgreSQL): a trial whose worker stopped beating for GRACE_S is failed by
# the next worker to start a trial (a machine that died, not just a process).
HEARTBEAT_S, GRACE_S = 60, 180

# Optuna user attributes: settings fingerprint and MLflow run of a study; worker and run of a trial.
SETTINGS_ATTR, RUN_ATTR, WORKER_ATTR = "losslab_settings", "losslab_run_id", "losslab_worker"


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
        tracking_uri = current_tracking_uri()
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
    """ConfigError / TrackingError at parse time (exit 2, nothing started) when the trials
    would have no storage (a tracking server without OPTUNA_STORAGE) or one whose folder
    cannot be created or written (`OPTUNA_STORAGE=/proc/x/optuna.journal`,
    `sqlite:////proc/x/o.db`). Unset MLFLOW_TRACKING_URI: the local store."""
    environ = os.environ if environ is None else environ
    uri = environ.get("MLFLOW_TRACKING_URI", "") or DEFAULT_URI
    local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
    if local and not environ.get("OPTUNA_STORAGE", "").strip():
        check_store(uri)  # the journal goes beside the store: a bad store is named first
    location = storage_location(environ, uri)
    named = (f"OPTUNA_STORAGE={redacted(location)}" if environ.get("OPTUNA_STORAGE", "").strip()
             else f"the Optuna journal {location}")
    if "://" not in location:
        path = Path(location).expanduser()
        if path.is_dir():
            raise TrackingError(f"{named}: {path} is a folder; name a journal file")
        check_folder(path.parent, named)
    elif location.startswith("sqlite:") and local_path(location) is not None:
        check_folder(local_path(location).parent, named)


def redacted(location: str) -> str:
    """A storage URL without its password (for params, messages and logs)."""
    return redact(location)


def open_storage(location: str) -> optuna.storages.BaseStorage:
    """An Optuna URL → RDBStorage (with heartbeats: trials of dead machines are failed);
    a path → JournalStorage on that file (safe for processes on one machine)."""
    if "://" in location:
        try:
            # Under the store's lock: workers started together create its tables one by one.
            with store_lock(location), warnings.catch_warnings():
                # heartbeats are "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    location, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=_close_stale_trial_run)
        except Exception as exc:  # noqa: BLE001 (driver errors vary: one line, exit 2)
            # SQLAlchemy appends "(Background on this error at: https://sqlalche.me/...)" on
            # a line of its own, and the SQL: the first line of the driver's message is enough.
            cause = getattr(exc, "orig", None) or exc
            first = (str(cause).strip().splitlines() or [""])[0]
            raise TrackingError(f"OPTUNA_STORAGE={redacted(location)} cannot be opened "
                                f"({type(cause).__name__}: {scrub(first)})") from None
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
                                    pruner=settings.optuna_pruner())
        study.set_user_attr(SETTINGS_ATTR, settings.fingerprint())
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage,
                                  pruner=settings.optuna_pruner())
    stored = wait_for_attr(study, SETTINGS_ATTR)
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


def wait_for_attr(study: optuna.Study, key: str, timeout: float = CREATOR_WAIT_S):
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


# --- counting, the best, and trials of workers that died -----------------------------------


def counted(study: optuna.Study, below: int | None = None) -> int:
    """Trials that use the budget (COMPLETE, PRUNED, RUNNING, WAITING), of numbers < `below`."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=COUNTED)
               if below is None or t.number < below)


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def best_or_none(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no COMPLETE trial yet
        return None


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
