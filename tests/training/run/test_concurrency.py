"""Two trainings started at once on one fresh SQLite store both finish with full histories.

SQLite allows one writer at a time: processes that create the schema, the experiment or write
metrics together see "database is locked". `training.run.tracking` serialises schema/experiment
creation with a file lock and retries locked writes; this test is the proof.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
PER_EPOCH = ["train/loss", "train/lr", "val/loss", "val/accuracy", "val/balanced_accuracy",
             "val/macro_f1", "val/ece"]


@pytest.mark.slow
def test_two_processes_on_one_fresh_sqlite_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # does not exist yet: both race to create it
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                          text=True).stdout.strip()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "training.train", "epochs=2", f"seed={seed}",
             f"checkpoint_dir={tmp_path / 'ckpt'}"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for seed in range(2)
    ]
    errors = [p.communicate(timeout=900)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 2, [e[-1500:] for e in errors]

    client = mlflow.MlflowClient(uri)
    experiments = client.search_experiments()
    assert [e.name for e in experiments if e.name != "Default"] == ["digits-classification"]
    runs = client.search_runs([e.experiment_id for e in experiments])
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    for run in runs:
        assert run.info.status == "FINISHED"
        for key in PER_EPOCH:
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == [1, 2], (run.info.run_id, key)
        assert "test/accuracy" in run.data.metrics
        # From the command line, MLflow itself records the commit of the code that ran.
        assert run.data.tags["mlflow.source.git.commit"] == head
