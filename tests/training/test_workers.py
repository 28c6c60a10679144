"""`make workers` (`python -m training.workers`): N local tf.distribute workers on loopback, their
TF_CONFIG, the launcher's stop rules, and one real 2-worker run that is then resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import mlflow
import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from training import workers


def _run(args, env_extra, timeout):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env_extra}
    return subprocess.run(
        args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )

def test_tf_config_names_the_cluster_and_this_task():
    ports = workers.free_ports(3)
    assert len(set(ports)) == 3 and all(0 < p < 65536 for p in ports)
    addresses = [f"127.0.0.1:{p}" for p in ports]
    spec = json.loads(workers.tf_config(addresses, 1))
    assert spec == {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": 1}}
    with pytest.raises(ValueError, match="index=3"):
        workers.tf_config(addresses, 3)


def test_worker_command_forces_multi_worker():
    command = workers.worker_command(["loss=ce", "epochs=2"])
    assert command[1:] == ["-m", "training.train", "strategy=multi_worker", "loss=ce", "epochs=2"]
    assert workers.worker_command(["strategy=multi_worker"])  # explicit and consistent: fine
    with pytest.raises(ValueError, match="strategy=multi_worker"):
        workers.worker_command(["strategy=mirrored"])
    assert workers.main(["workers=2", "strategy=none"]) == 2


def test_first_failure_stops_the_other_workers(monkeypatch):
    """A worker that fails makes the launcher stop the rest (which would otherwise wait
    forever in an all-reduce) and return the failing exit code."""
    monkeypatch.setattr(workers, "GRACE_SECONDS", 5)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    failing = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    started = time.monotonic()
    assert workers._wait([sleeper, failing], timeout=60) == 3
    assert time.monotonic() - started < 30
    assert sleeper.poll() is not None  # stopped, not left running


def test_timeout_stops_all_workers(monkeypatch):
    monkeypatch.setattr(workers, "GRACE_SECONDS", 5)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert workers._wait([sleeper], timeout=0.5) == 124
    assert sleeper.poll() is not None


@pytest.mark.slow
def test_two_workers_leave_one_run_and_resume(tmp_path, mlflow_store):
    """2 workers on loopback: one FINISHED MLflow run (the chief's) with every epoch logged,
    one checkpoint folder; then the same 2 workers resume that run for one more epoch."""
    ck = tmp_path / "ck"
    env = {"MLFLOW_TRACKING_URI": mlflow_store, "TMPDIR": str(tmp_path)}
    base = [sys.executable, "-m", "training.workers", "workers=2", "timeout=500"]
    proc = _run([*base, "dataset=digits", "epochs=1", f"checkpoint_dir={ck}"], env, 540)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "[worker 1]" in proc.stdout and "[worker 0] epoch 1/1" in proc.stdout
    assert "[worker 1] epoch" not in proc.stdout  # only the chief evaluates and logs

    client = mlflow.MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    assert len(runs) == 1
    run_id = runs[0].info.run_id
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.params["strategy"] == "multi_worker"
    assert [p.name for p in ck.iterdir()] == [run_id]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("losslab-worker-")]

    proc = _run([*base, f"resume={run_id}", "epochs=2"], env, 540)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    runs = client.search_runs(experiments)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    for key in ("train/loss", "val/loss", "val/accuracy", "train/lr"):
        history = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in history) == [1, 2], key
        assert all(np.isfinite(m.value) for m in history)
    assert len(client.get_metric_history(run_id, "test/accuracy")) == 2  # one per session


def test_the_launcher_imports_no_tensorflow():
    """The launcher only starts processes: each worker imports TensorFlow itself, so the
    launcher's own start stays well under a second."""
    code = "import sys, training.workers; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["False", "False"]
