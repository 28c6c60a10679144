"""`make tune`: the key=value line and its refusals, the search space, storage and workers'
environment (no training), then tiny real studies on digits (1-3 epochs, 1-4 trials): trials
under one study run, best/value, no test split, pruning, 2 workers on one journal, and a
worker killed mid-trial whose study is then resumed."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from training.config import ConfigError
from training.study import tune
from training.study.tune import settings as tune_settings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_storage_from_the_environment(monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


# --- the command line (no training) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["loss=focal", "trials=2", "objective=test/balanced_accuracy"],
         "trials never read the test split; choose a val/ metric: val/balanced_accuracy"),
        (["loss=focal", "trials=2", "objective=train/loss"], "is not a val/ metric"),
        (["loss=triplet", "trials=2", "objective=val/balanced_accuracy"],
         "valid: val/map_at_r, val/precision_at_1"),
        (["loss=ce", "trials=2"], "ce has nothing to tune: its registry entry declares no "
         "search range; tune shared settings with tune_keys=learning_rate,l2"),
        (["loss=focal", "gamma=1", "trials=2"], "given on the line, so fixed: gamma"),
        (["loss=focal"], "trials=<value> is required"),
        (["loss=focal", "trials=-1"], "trials=-1 is out of range"),
        (["loss=focal", "trials=2", "pruner=hyperband"], "choose one of: median, none"),
        (["loss=focal", "trials=2", "workers=0"], "workers=0 is out of range"),
        (["loss=focal", "trials=2", "tune_keys=margin"], "'margin' has no built-in range; "
         "valid: learning_rate (log 0.0001..0.01), l2 (log 1e-06..0.01)"),
        (["loss=focal", "trials=2", "l2=0.1", "tune_keys=l2"], "l2 is both set"),
        (["loss=focal", "trials=2", "run_name=x"], "run_name is set per trial"),
        (["loss=focal", "trials=2", "learning_rat=1"], "did you mean 'learning_rate'"),
        (["loss=focal", "trials"], "expected key=value"),
    ],
)
def test_bad_input_exits_2_naming_the_valid_choices(args, needle, capsys):
    assert tune.main(args) == 2
    assert needle in capsys.readouterr().err


def test_search_space_is_the_registry_entry_plus_named_shared_keys():
    space = tune.parse_settings(["loss=cb_focal", "trials=3"]).search_space()
    assert space == {"beta": ("choice", (0.99, 0.999, 0.9999)), "gamma": ("float", 0.0, 5.0)}
    settings = tune.parse_settings(["loss=ce", "trials=3", "tune_keys=learning_rate,l2", "epochs=2"])
    assert settings.search_space() == tune.SHARED_RANGES
    assert settings.config.epochs == 2 and settings.objective == "val/balanced_accuracy"
    assert settings.study_name() == "ce-digits-val/balanced_accuracy"
    retrieval = tune.parse_settings(["loss=triplet", "trials=3", "objective=val/precision_at_1"])
    assert retrieval.direction == "maximize" and "margin" in retrieval.search_space()
    assert tune.parse_settings(["loss=focal", "trials=3", "objective=val/ece"]).direction == "minimize"
    # The fingerprint ignores per-run names but not the trials' settings.
    a = tune.parse_settings(["loss=focal", "trials=3", "checkpoint_dir=/x"]).fingerprint()
    assert a == tune.parse_settings(["loss=focal", "trials=9"]).fingerprint()
    assert a != tune.parse_settings(["loss=focal", "trials=3", "epochs=2"]).fingerprint()


def test_sample_draws_each_kind_of_range_within_its_bounds():
    study = optuna.create_study()
    space = {"a": ("float", 0.0, 5.0), "b": ("log", 1e-4, 1e-2), "c": ("int", 1, 3),
             "d": ("choice", (None, 0.99))}
    for _ in range(10):
        values = tune.sample(study.ask(), space)
        assert 0 <= values["a"] <= 5 and 1e-4 <= values["b"] <= 1e-2
        assert values["c"] in (1, 2, 3) and values["d"] in (None, 0.99)
    config = tune.apply_params(tune.parse_settings(["loss=focal", "trials=1"]).config,
                               {"gamma": 0.5, "learning_rate": 1e-3})
    assert (config.loss_args, config.learning_rate) == ({"gamma": 0.5}, 1e-3)


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


def test_workers_get_one_gpu_each_round_robin_and_the_same_study():
    assert tune.visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}) == ["0", "1"]
    assert tune.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    envs = [tune.worker_env(i, ["0", "1"], "/j", {}) for i in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0"]
    assert all(e["OPTUNA_STORAGE"] == "/j" and e["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
               for e in envs)
    assert "CUDA_VISIBLE_DEVICES" not in tune.worker_env(0, [], "/j", {})
    argv = ["loss=focal", "trials=4", "workers=3", "study=old"]
    command = tune.worker_command(tune.parse_settings(argv))
    assert command[1:] == ["-m", "training.tune", "loss=focal", "trials=4", "workers=1",
                           "study=old"]


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


def test_help_lists_every_key_and_search_space_without_tensorflow():
    code = ("import runpy, sys; sys.argv = ['training.tune', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('training.tune', run_name='__main__')\n"
            "except SystemExit as exit:\n"
            "    print('TF' if 'tensorflow' in sys.modules else 'noTF', exit.code)\n")
    out = subprocess.run([sys.executable, "-c", code, "loss=focal", "--help"],
                         capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert out.stdout.rstrip().endswith("noTF 0"), out.stdout[-300:] + out.stderr
    for key in tune.TUNE_KEYS:
        assert f"  {key.name} " in out.stdout
    assert "  epochs " in out.stdout and "  focal                  gamma float 0..5" in out.stdout
    assert "gamma: float, default 2.0" in out.stdout


# --- tiny real studies -----------------------------------------------------------------------


def _argv(tmp_path, *extra):
    return ["loss=focal", "epochs=1", "batch_size=32", f"checkpoint_dir={tmp_path / 'ck'}",
            *extra]


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
    # Trial value = the objective at the last epoch, read back from MLflow independently.
    values = {r.info.run_id: r.data.metrics["val/balanced_accuracy"] for r in trials}
    best = max(values, key=values.get)
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
    worker = subprocess.Popen(_tune_command(tmp_path, "trials=1", "epochs=2"), cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    journal = tmp_path / "optuna.journal"
    deadline = time.monotonic() + 120
    try:  # wait until trial 0 trains: its MLflow run is open and fit has begun
        while time.monotonic() < deadline and worker.poll() is None:
            if journal.exists():
                trials = _study(settings, tmp_path).trials
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
