"""`make compare WORKERS=3` with the grid in the team's PostgreSQL (`OPTUNA_STORAGE=
postgresql://`, what several machines share): every cell runs once, no run is left RUNNING,
and each cell's test metrics equal those of a one-worker compare of the same settings. The
database is a fresh one per test (`fresh_database`, from `.ci/postgres.sh`'s server); the
MLflow stores stay local SQLite files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
WORDS = ["losses=ce,focal", "seeds=2", "epochs=1", "batch_size=32"]


def _cells(uri: str) -> dict[str, dict]:
    import mlflow

    from training.study.grid_worker import CELL_TAG

    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    finished = [r for r in runs if r.info.status == "FINISHED" and CELL_TAG in r.data.tags]
    keys = [r.data.tags[CELL_TAG] for r in finished]
    assert len(keys) == len(set(keys)), keys
    return {r.data.tags[CELL_TAG]: {k: v for k, v in r.data.metrics.items()
                                    if k.startswith("test/")} for r in finished}


@pytest.mark.server
@pytest.mark.slow
def test_three_workers_fill_a_grid_stored_in_postgres(fresh_database, new_store, tmp_path):
    import optuna

    from training.study import grid

    results = {}
    for workers, storage in ((3, fresh_database), (1, None)):
        # Each compare is its own process, as `make compare` starts it: a launcher inside this
        # test process would run its cell on pytest's TensorFlow, whose thread pools earlier
        # tests started (more intra-op threads than a worker: other last digits).
        env = {k: v for k, v in os.environ.items()
               if k not in ("OPTUNA_STORAGE", "CUDA_VISIBLE_DEVICES")}
        env["MLFLOW_TRACKING_URI"] = uri = new_store(tmp_path / f"w{workers}.db")
        if storage:
            env["OPTUNA_STORAGE"] = storage
        done = subprocess.run(
            [sys.executable, "-m", "training.compare", *WORDS, f"workers={workers}",
             f"checkpoint_dir={tmp_path / f'ck{workers}'}"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=1200)
        assert done.returncode == 0, done.stdout[-3000:]
        results[workers] = _cells(uri)
    assert sorted(results[3]) == sorted(results[1]) and len(results[3]) == 4
    for key, metrics in results[1].items():
        assert metrics == results[3][key], key
    # The cells lived in PostgreSQL: one study, 4 COMPLETE trials, nothing RUNNING.
    (summary,) = [s for s in optuna.get_all_study_summaries(fresh_database)
                  if s.study_name.startswith("compare-grid-")]
    study = optuna.load_study(study_name=summary.study_name, storage=fresh_database)
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,
                                        optuna.trial.TrialState.WAITING))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.user_attrs[grid.CELL_ATTR] for t in complete) == sorted(results[3])
