"""Where a study lives and what uses its budget, no training: a journal beside the MLflow
store or OPTUNA_STORAGE (its password redacted), a server store without it refused before
anything starts, a dead worker's RUNNING trial failed, and the counts that make N workers
run exactly the total."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from training.config import ConfigError
from training.study import tune


@pytest.fixture(autouse=True)
def _no_storage_from_the_environment(monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_storage_is_a_journal_beside_the_store_or_optuna_storage(tmp_path):
    db = tmp_path / "sub" / "x.db"
    assert tune.storage_location({}, f"sqlite:///{db}") == str(db.parent / "optuna.journal")
    assert tune.storage_location({}, f"file://{tmp_path}/mlruns") == str(
        tmp_path / "optuna.journal")
    url = "postgresql://team:s3cret@db:5432/mlflow"
    assert tune.storage_location({"OPTUNA_STORAGE": url}, "http://server:5000") == url
    assert tune.redacted(url) == "postgresql://team:***@db:5432/mlflow"
    with pytest.raises(ConfigError, match="set OPTUNA_STORAGE to a storage every worker"):
        tune.storage_location({}, "http://server:5000")
    tune.check_storage({})  # the default store: a local journal
    with pytest.raises(ConfigError, match="is not a local file"):
        tune.check_storage({"MLFLOW_TRACKING_URI": "http://user:pw@server:5000"})


def test_a_server_store_without_optuna_storage_exits_2_before_anything(monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert tune.main(["loss=focal", "trials=2"]) == 2
    err = capsys.readouterr().err
    assert "the MLflow store http://127.0.0.1:9 is not a local file: set OPTUNA_STORAGE" in err


def test_a_dead_workers_running_trial_is_failed_by_the_next_worker():
    study = optuna.create_study()
    trial = study.ask()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid no longer exists
    trial.set_user_attr(tune.WORKER_ATTR, f"{socket.gethostname()}:{gone.pid}")
    mine = study.ask()
    mine.set_user_attr(tune.WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
    assert tune.fail_dead_workers_trials(study) == [trial.number]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.RUNNING]
    assert tune.counted(study) == 1  # a FAIL does not use the budget


def test_counts_make_n_workers_run_exactly_the_total():
    """The budget rule on its own: a trial may run while fewer than `trials` trials before it
    (by number) are COMPLETE, PRUNED or RUNNING; a FAIL frees its slot."""
    study = optuna.create_study()
    for value in (0.1, 0.2):
        trial = study.ask()
        study.tell(trial, value)
    failed = study.ask()
    study.tell(failed, state=TrialState.FAIL)
    running = study.ask()
    assert tune.counted(study) == 3 and tune.counted(study, below=running.number) == 2
    late = study.ask()  # a second worker asking at the same moment
    assert tune.counted(study, below=late.number) == 3  # with trials=3 it must not run
    assert list(itertools.islice((t.number for t in study.trials), 5)) == [0, 1, 2, 3, 4]
