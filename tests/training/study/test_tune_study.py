"""Tiny real studies on digits (1-3 epochs, 1-4 trials): trials under one study run,
best/value, no test split, pruning, 2 workers on one journal, and a worker killed mid-trial
whose study is then resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from training.study import tune
from training.study.tune import settings as tune_settings

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _no_storage_from_the_environment(monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def _argv(tmp_path, *extra):
    """The test's defaults, each replaced by a key `extra` gives (a key twice is an error)."""
    given = {word.partition("=")[0] for word in extra}
    base = ["loss=focal", "epochs=1", "batch_size=32", f"checkpoint_dir={tmp_path / 'ck'}"]
    return [*(w for w in base if w.partition("=")[0] not in given), *extra]


def _study(settings, tmp_path) -> optuna.Study:
    storage = tune.open_storage(str(tmp_path / "optuna.journal"))
    return optuna.load_study(study_name=settings.study_name(), storage=storage)


def _trial_runs(client, study_run_id):
    run = client.get_run(study_run_id)
    return client.search_runs([run.info.experiment_id],
                              f"tags.mlflow.parentRunId = '{study_run_id}'")


@pytest.mark.slow
def test_a_study_runs_its_trials_under_one_study_run_and_records_the_best(
        mlflow_store, tmp_path):
    settings = tune.parse_settings(_argv(tmp_path, "trials=3"))
    result = tune.run_study(settings)
    client = mlflow.MlflowClient(mlflow_store)
    parent = client.get_run(result.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[tune.STUDY_TAG] == settings.study_name()
    assert parent.data.params["study.trials"] == "3"
    assert parent.data.params["search.gamma"] == "float 0..5"
    trials = _trial_runs(client, result.run_id)
    assert len(trials) == 3 and {r.info.status for r in trials} == {"FINISHED"}
    assert {r.data.tags[tune.TRIAL_TAG] for r in trials} == {"0", "1", "2"}
    assert len({r.data.params["loss.gamma"] for r in trials}) == 3  # distinct params
    for run in trials:
        assert not [k for k in run.data.metrics if k.startswith("test/")]
        assert run.data.tags[tune.STUDY_TAG] == settings.study_name()
        # Trials log their weights, not a LoggedModel (the Models tab stays for real runs).
        assert {a.path for a in client.list_artifacts(run.info.run_id, "weights")} == {
            "weights/initial.weights.h5", "weights/final.weights.h5"}
    experiment = parent.info.experiment_id
    assert client.search_logged_models(experiment_ids=[experiment]) == []
    # Trial value = the objective at the last epoch, read back from MLflow independently.
    values = {r.info.run_id: r.data.metrics["val/balanced_accuracy"] for r in trials}
    # Ties (two trials with the same balanced accuracy on 144 images happen) go to the
    # earliest trial, as Optuna's best_trial does.
    number = {r.info.run_id: int(r.data.tags[tune.TRIAL_TAG]) for r in trials}
    best = min((run_id for run_id in values if values[run_id] == max(values.values())),
               key=number.get)
    assert parent.data.metrics["best/value"] == pytest.approx(values[best])
    assert result.best_value == pytest.approx(values[best])
    best_run = client.get_run(best)
    assert parent.data.params["best/gamma"] == best_run.data.params["loss.gamma"]
    assert parent.data.params["best/trial"] == best_run.data.tags[tune.TRIAL_TAG]
    figures = {a.path for a in client.list_artifacts(result.run_id, "study")}
    assert {"study/optimization_history.png", "study/param_importances.png"} <= figures
    # The same command again continues the study: it is complete, no new trial runs.
    again = tune.run_study(settings)
    assert (again.run_id, again.complete) == (result.run_id, 3)
    assert len(_trial_runs(client, result.run_id)) == 3


class _NoTestSplit:
    """The real splits, except that reading the test split fails."""

    def __init__(self, splits):
        self._splits = splits

    def __getattr__(self, name):
        return getattr(self._splits, name)

    @property
    def x_test(self):
        raise AssertionError("a tuning trial read the test split (x_test)")

    @property
    def y_test(self):
        raise AssertionError("a tuning trial read the test split (y_test)")


@pytest.mark.slow
def test_trials_never_read_the_test_split(mlflow_store, tmp_path, monkeypatch):
    from training.run import trainer

    real = trainer.build_splits
    monkeypatch.setattr(trainer, "build_splits", lambda config: _NoTestSplit(real(config)))
    result = tune.run_study(tune.parse_settings(_argv(tmp_path, "trials=1")))
    assert result.complete == 1
    (run,) = _trial_runs(mlflow.MlflowClient(mlflow_store), result.run_id)
    assert not [k for k in run.data.metrics if k.startswith("test/")]


@pytest.mark.slow
def test_a_pruned_trial_stops_cleanly_and_its_run_is_finished(mlflow_store, tmp_path,
                                                              monkeypatch):
    from training.run import trainer

    # Objective per epoch, per trial: trial 1 is far below trial 0 at epoch 2 → pruned there.
    script = iter([[0.5, 0.6, 0.7], [0.1, 0.1, 0.1]])

    def scripted(*args):
        values = iter(next(script))
        return lambda: {"balanced_accuracy": next(values), "loss": 1.0}

    monkeypatch.setattr(trainer, "_evaluator", scripted)
    monkeypatch.setattr(tune_settings, "PRUNER_STARTUP_TRIALS", 1)
    settings = tune.parse_settings(_argv(tmp_path, "trials=2", "epochs=3"))
    result = tune.run_study(settings)
    assert (result.complete, result.pruned, result.best_value) == (1, 1, 0.7)
    study = _study(settings, tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert study.trials[1].intermediate_values == {1: 0.1, 2: 0.1}
    client = mlflow.MlflowClient(mlflow_store)
    runs = {r.data.tags[tune.TRIAL_TAG]: r for r in _trial_runs(client, result.run_id)}
    pruned = runs["1"]
    assert pruned.info.status == "FINISHED"
    assert pruned.data.tags["losslab.pruned"] == "true"
    assert pruned.data.tags["losslab.stopped_epoch"] == "2"
    steps = client.get_metric_history(pruned.info.run_id, "val/balanced_accuracy")
    assert [m.step for m in steps] == [1, 2]
    assert "losslab.pruned" not in runs["0"].data.tags


def _tune_command(tmp_path, *extra) -> list[str]:
    return [sys.executable, "-m", "training.tune", *_argv(tmp_path, *extra)]


@pytest.mark.slow
def test_two_local_workers_share_the_study_total(mlflow_store, tmp_path, capsys,
                                                 monkeypatch):
    argv = _argv(tmp_path, "trials=4", "workers=2")
    settings = tune.parse_settings(argv)
    monkeypatch.chdir(REPO_ROOT)  # the workers run `python -m training.tune` from here
    code = tune.main(argv)
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "[worker 0]" in out and "[worker 1]" in out
    study = _study(settings, tmp_path)
    scored = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(scored) == 4
    assert len({t.params["gamma"] for t in scored}) == 4  # no duplicate points
    assert len({t.user_attrs[tune.WORKER_ATTR] for t in scored}) == 2  # both took part
    client = mlflow.MlflowClient(mlflow_store)
    study_run = study.user_attrs[tune.RUN_ATTR]
    runs = _trial_runs(client, study_run)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert sorted(r.data.tags[tune.TRIAL_TAG] for r in finished) == sorted(
        str(t.number) for t in scored)
    # A run that failed (two first runs racing on MLflow's dataset table can fail one) is
    # a FAIL trial that did not count: another trial took its place.
    failed = {str(t.number) for t in study.trials if t.state == TrialState.FAIL}
    assert {r.data.tags[tune.TRIAL_TAG] for r in runs if r not in finished} <= failed
    assert client.get_run(study_run).info.status == "FINISHED"


@pytest.mark.slow
def test_a_worker_killed_mid_trial_loses_only_that_trial(mlflow_store, tmp_path):
    argv = _argv(tmp_path, "trials=1", "epochs=2")
    settings = tune.parse_settings(argv)
    env = dict(os.environ, PYTHONFAULTHANDLER="1")  # a crash prints every thread's stack
    worker = subprocess.Popen(_tune_command(tmp_path, "trials=1", "epochs=2"), cwd=REPO_ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    journal = tmp_path / "optuna.journal"
    deadline = time.monotonic() + 120
    try:  # wait until trial 0 trains: its MLflow run is open and fit has begun
        while time.monotonic() < deadline and worker.poll() is None:
            if journal.exists():
                try:
                    trials = _study(settings, tmp_path).trials
                except KeyError:  # the journal file exists before the study is written in it
                    trials = []
                if trials and tune.RUN_ATTR in trials[0].user_attrs:
                    break
            time.sleep(0.3)
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=60)[0]
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 143, output[-3000:]
    killed = _study(settings, tmp_path).trials[0]
    assert killed.state == TrialState.FAIL
    client = mlflow.MlflowClient(mlflow_store)
    assert client.get_run(killed.user_attrs[tune.RUN_ATTR]).info.status == "KILLED"
    # The same command again: the killed trial does not count, the total is completed.
    result = tune.run_study(settings)
    assert (result.complete + result.pruned, result.failed) == (1, 1)
    study = _study(settings, tmp_path)
    assert [t.state for t in study.trials][0] == TrialState.FAIL
    assert client.get_run(result.run_id).info.status == "FINISHED"
    statuses = sorted(r.info.status for r in _trial_runs(client, result.run_id))
    assert statuses == ["FINISHED", "KILLED"]
