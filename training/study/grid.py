"""A compare's cells (dataset, variant, seed) as the trials of one Optuna study: the shared
state of every worker on every machine, in Optuna's storage (the tuner's: a journal file
beside the MLflow store, or `OPTUNA_STORAGE`).

Each cell to run is an enqueued trial (`Study.enqueue_trial`, state WAITING, the cell's key in
a user attribute). A worker claims one with `Study.ask()`, which moves the oldest WAITING trial
to RUNNING through the storage's own atomic state change (a row update in an RDB, an
append-only journal entry elsewhere): two workers never get the same trial. A trial's state is
its cell's: RUNNING (a worker trains it), COMPLETE (its MLflow run FINISHED, id in the
trial's `losslab_run_id`), FAIL (the run failed or was killed: a later run of the compare
enqueues the cell again).

Two launchers starting together (two machines) can each enqueue a cell; then the cell's lowest
numbered trial that is not FAIL is its owner (`owner_of`), and a worker that claimed another
one gives it up without training. Trials are numbered in creation order and never go back to
WAITING, so whoever checks sees the owner: a cell never trains twice at once, never completes
twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import typing
import warnings

import optuna
from optuna.trial import TrialState

from training.cli import signals_deferred  # noqa: F401 (the grid's writes use it)
from training.config import Config
from training.study.tune.storage import (
    RUN_ATTR,
    WORKER_ATTR,
    fail_dead_workers_trials,
    open_storage,
)

CELL_ATTR = "losslab_cell"  # the cell key of a trial: "digits|ce|0"
PARENT_ATTR = "losslab_parent_run_id"  # the study's compare parent run
LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One child run of a compare: a variant at a seed on a dataset, and its Config."""

    dataset: str
    variant: str
    seed: int
    config: Config

    @property
    def key(self) -> str:
        return f"{self.dataset}|{self.variant}|{self.seed}"


def study_name(fingerprint: dict[str, typing.Any]) -> str:
    """`compare-grid-<12 hex>`: the same compare settings, the same grid (so the same command
    continues it, on any machine)."""
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return "compare-grid-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def open_grid(name: str, location: str) -> tuple[optuna.Study, bool]:
    """The grid's study in the storage at `location`: created, or loaded → (study, created)."""
    storage = open_storage(location)
    # Random, not TPE: every trial's params are fixed (none), and TPE would read every trial
    # at each `ask`.
    sampler = optuna.samplers.RandomSampler(seed=0)
    try:
        return optuna.create_study(study_name=name, storage=storage, sampler=sampler), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler), False


def trials_by_cell(study: optuna.Study) -> dict[str, list[optuna.trial.FrozenTrial]]:
    """cell key → its trials, by number (trials without a cell key are left out)."""
    out: dict[str, list] = {}
    for trial in study.get_trials(deepcopy=False):
        key = trial.user_attrs.get(CELL_ATTR)
        if key is not None:
            out.setdefault(key, []).append(trial)
    return out


def owner_of(trials: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial | None:
    """The trial that owns a cell: its lowest-numbered one that is WAITING, RUNNING or
    COMPLETE (None: every trial of the cell failed, or it has none)."""
    live = [t for t in trials if t.state in LIVE]
    return min(live, key=lambda t: t.number) if live else None


def enqueue_missing(study: optuna.Study, cells: typing.Iterable[Cell]) -> list[Cell]:
    """Enqueue every cell with no owner (new, failed or killed) → those enqueued."""
    have = trials_by_cell(study)
    missing = [c for c in cells if owner_of(have.get(c.key, [])) is None]
    for cell in missing:
        study.enqueue_trial({}, user_attrs={CELL_ATTR: cell.key})
    return missing


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(study: optuna.Study) -> tuple[optuna.Trial, str] | None:
    """The next free cell → (its RUNNING trial, cell key); None when no cell is WAITING.

    A claimed trial that does not own its cell (a duplicate from a second launcher) is told
    FAIL with `losslab_duplicate_of` set, and the next one is claimed. A trial without a cell
    (`ask` created one because another worker took the last WAITING trial meanwhile) is told
    FAIL the same way: FAIL trials without an owner role are never counted."""
    while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial = study.ask()
        key = trial.user_attrs.get(CELL_ATTR)
        if key is None:
            trial.set_user_attr("losslab_note", "no cell left when claimed")
            study.tell(trial, state=TrialState.FAIL)
            return None
        owner = owner_of(trials_by_cell(study)[key])
        if owner is not None and owner.number != trial.number:
            trial.set_user_attr("losslab_duplicate_of", owner.number)
            study.tell(trial, state=TrialState.FAIL)
            continue
        trial.set_user_attr(WORKER_ATTR, worker_id())
        return trial, key
    return None


def reap(study: optuna.Study, cells: typing.Iterable[Cell]) -> list[Cell]:
    """Free the cells of dead workers and enqueue them again → those enqueued: RUNNING trials
    of processes of this host that are gone (SIGKILL, out of memory), and, on an RDB storage
    with heartbeats, of workers anywhere whose heartbeat stopped (Optuna's grace period).
    A cell that failed with an error is not enqueued here: it runs again on the next run of
    the compare (`enqueue_missing`), not in a loop of this one."""
    dead = set(fail_dead_workers_trials(study))  # this host: FAIL, MLflow run KILLED
    storage = study._storage  # noqa: SLF001 (Optuna's helpers take the study)
    if getattr(storage, "get_heartbeat_interval", lambda: None)():
        running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():  # "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        dead |= {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                 if t.number in running}
    keys = {t.user_attrs.get(CELL_ATTR) for t in study.get_trials(deepcopy=False)
            if t.number in dead}
    return enqueue_missing(study, [c for c in cells if c.key in keys])


def states(study: optuna.Study, cells: typing.Iterable[Cell]) -> dict[str, list[Cell]]:
    """The cells by state of their owner: "done", "running", "waiting", "failed"."""
    have = trials_by_cell(study)
    out: dict[str, list[Cell]] = {"done": [], "running": [], "waiting": [], "failed": []}
    names = {TrialState.COMPLETE: "done", TrialState.RUNNING: "running",
             TrialState.WAITING: "waiting"}
    for cell in cells:
        owner = owner_of(have.get(cell.key, []))
        out["failed" if owner is None else names[owner.state]].append(cell)
    return out


def run_of(study: optuna.Study, key: str) -> str | None:
    """The MLflow run of a cell's COMPLETE trial."""
    owner = owner_of(trials_by_cell(study).get(key, []))
    if owner is None or owner.state != TrialState.COMPLETE:
        return None
    return owner.user_attrs.get(RUN_ATTR)
