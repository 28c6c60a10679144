"""Regression through the compare unchanged: tuning on val/rmse (minimised), children per
(loss, seed), the report's paired table in RMSE, the study's direction from the catalogue."""

from __future__ import annotations

import mlflow
import optuna
import pytest

from training.study import compare as compare_module
from training.study.compare_parse import parse_settings
from training.study.tune.storage import open_storage, storage_location


@pytest.mark.slow
def test_a_tuned_regression_compare_minimises_val_rmse(mlflow_store, tmp_path, monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = parse_settings(["dataset=diabetes", "losses=mse,huber", "seeds=2", "epochs=2",
                               "tune=2", "tune_epochs=1", f"checkpoint_dir={tmp_path / 'ck'}"])
    report = compare_module.compare(settings)
    client = mlflow.MlflowClient(mlflow_store)
    parent = client.get_run(report.parent_id)
    assert parent.data.tags["losslab.tuned"] == "2 trials per loss on val/rmse"
    assert float(parent.data.params["tuned/huber/delta"]) > 0
    runs = client.search_runs([parent.info.experiment_id],
                              f"tags.mlflow.parentRunId = '{report.parent_id}'")
    finals = {r.info.run_name: r for r in runs if r.info.run_name.endswith(("seed0", "seed1"))}
    assert set(finals) == {"mse-seed0", "mse-seed1", "huber-seed0", "huber-seed1"}
    for run in finals.values():
        assert run.info.status == "FINISHED"
        assert {"test/rmse", "test/mae", "test/r2", "test/median_ae"} <= set(run.data.metrics)
    # The huber study minimised val/rmse: its best value is the smallest trial value.
    storage = open_storage(storage_location())
    studies = [s for s in optuna.get_all_study_summaries(storage) if s.study_name.endswith("huber")]
    assert studies, [s.study_name for s in optuna.get_all_study_summaries(storage)]
    study = optuna.load_study(study_name=studies[0].study_name, storage=storage)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    values = [t.value for t in study.trials if t.value is not None]
    assert study.best_value == min(values)
    # The report's table is in RMSE, paired by seed, huber against the reference mse.
    assert "RMSE" in report.markdown or "rmse" in report.markdown
    mean_rmse = sum(finals[f"mse-seed{s}"].data.metrics["test/rmse"] for s in (0, 1)) / 2
    assert f"{mean_rmse:.4f}"[:5] in report.markdown.replace(",", "")
