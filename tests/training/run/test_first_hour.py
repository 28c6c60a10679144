"""What a newcomer sees: a quiet start, Keras's progress bar on a terminal, one line about the
config, the run's address at the end; experiment kind and system metrics (off unless asked) in
MLflow."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import mlflow
import pytest
from conftest import REPO_ROOT

from training.train import train

NOISE = ("absl::InitializeLog", "cuda", "cuInit", "oneDNN", "cpu_feature_guard",
         "Creating initial MLflow database tables", "INFO mlflow")


def _on_a_terminal(argv: list[str], env: dict[str, str]) -> str:
    """Runs `python -m training.train argv` with stdout and stderr on a pseudo-terminal."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "training.train", *argv], cwd=REPO_ROOT,
                            env=env, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=600) == 0, b"".join(chunks)[-3000:]
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_a_terminal_run_is_quiet_and_shows_keras_progress(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "DEBUG")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'm.db'}"  # a new store: tables created
    out = _on_a_terminal(["epochs=2", f"checkpoint_dir={tmp_path / 'ck'}"], env)
    lines = [ln for ln in out.replace("\r", "\n").splitlines() if ln.strip()]
    assert lines[0] == f"ce on digits: epochs=2 checkpoint_dir={tmp_path / 'ck'}"
    for word in NOISE:
        assert word not in out, word
    assert "━" in out and "step" in out  # Keras's own progress bar, within each epoch
    assert not any(ln.startswith("epoch 1/2 (") for ln in lines)  # not our log line as well
    assert "view it: http://127.0.0.1:5000/#/experiments/" in out
    # MLflow's UI opens our experiments in its model-training view; system metrics are off
    # by default (test_system_metrics_when_asked turns them on).
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    (experiment,) = [e for e in client.search_experiments() if e.name != "Default"]
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert not any(k.startswith("system/") for k in run.data.metrics), sorted(run.data.metrics)


@pytest.mark.slow
def test_a_compare_from_the_command_line_is_quiet_too(tmp_path):
    # `training.compare` imports Keras only once its settings parse; TensorFlow must still
    # come in through training.quiet, or absl's start-up lines reach stderr.
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "TF_CPP_MIN_LOG_LEVEL")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = subprocess.run([sys.executable, "-m", "training.compare", "losses=ce", "seeds=1",
                          "epochs=1", f"checkpoint_dir={tmp_path / 'ck'}"], cwd=REPO_ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "# Loss comparison on digits" in out.stdout
    noisy = [line for line in (out.stdout + out.stderr).splitlines()
             if any(n in line for n in NOISE)]
    assert not noisy, noisy


def test_help_of_compare_and_tune_imports_no_tensorflow():
    for module in ("training.compare", "training.tune"):
        code = (f"import runpy, sys; sys.argv = ['{module}', '--help']\n"
                "try:\n"
                f"    runpy.run_module('{module}', run_name='__main__')\n"
                "except SystemExit as exit:\n"
                "    print('TF' if 'tensorflow' in sys.modules else 'noTF', exit.code)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120, cwd=REPO_ROOT)
        assert out.stdout.rstrip().endswith("noTF 0"), (module, out.stdout[-500:], out.stderr)
        assert "usage: python -m " in out.stdout


@pytest.mark.slow
def test_system_metrics_when_asked(tiny, mlflow_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    result = train(tiny(epochs=1, system_metrics=True))
    client = mlflow.MlflowClient()
    experiment = client.get_experiment(result["experiment_id"])
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    run = client.get_run(result["run_id"])
    assert any(k.startswith("system/") for k in run.data.metrics), sorted(run.data.metrics)
