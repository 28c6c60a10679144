"""`make tune WORKERS=2` with the study in the team's PostgreSQL (`OPTUNA_STORAGE=postgresql://`,
what several machines share): 2 local workers split TRIALS=4 between them, with no duplicate.
The database is a fresh one per test (`fresh_database`, from `.ci/postgres.sh`'s server); the
MLflow store stays a local SQLite file, so this test needs no tracking server."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.server
@pytest.mark.slow
def test_two_workers_share_a_study_stored_in_postgres(fresh_database, mlflow_store, tmp_path,
                                                      monkeypatch, capsys):
    import mlflow
    import optuna
    from optuna.trial import TrialState

    from training.study import tune

    monkeypatch.setenv("OPTUNA_STORAGE", fresh_database)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.chdir(REPO_ROOT)  # the workers run `python -m training.tune` from here
    argv = ["loss=focal", "trials=4", "workers=2", "epochs=1", "batch_size=32",
            f"checkpoint_dir={tmp_path / 'ck'}"]
    assert tune.main(argv) == 0, capsys.readouterr().out[-3000:]

    settings = tune.parse_settings(argv)
    study = optuna.load_study(study_name=settings.study_name(), storage=fresh_database)
    scored = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(scored) == 4
    assert len({t.params["gamma"] for t in scored}) == 4
    assert len({t.user_attrs[tune.WORKER_ATTR] for t in scored}) == 2
    # Nothing of the study went to a local journal: PostgreSQL holds it.
    assert not (tmp_path / "optuna.journal").exists()

    client = mlflow.MlflowClient(mlflow_store)
    study_run = client.get_run(study.user_attrs[tune.RUN_ATTR])
    assert study_run.info.status == "FINISHED"
    assert study_run.data.params["study.storage"] == tune.redacted(fresh_database)
    assert ":***@" in study_run.data.params["study.storage"]  # no password in the store
    runs = client.search_runs([study_run.info.experiment_id],
                              f"tags.mlflow.parentRunId = '{study_run.info.run_id}'")
    finished = sorted(r.data.tags[tune.TRIAL_TAG] for r in runs if r.info.status == "FINISHED")
    assert finished == sorted(str(t.number) for t in scored)
