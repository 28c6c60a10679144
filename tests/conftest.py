"""Shared fixtures: an isolated MLflow store per test and a config shrunk to seconds on CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
# CI has the real MNIST test split at the same place relative to the clone.
MNIST_T10K = (REPO_ROOT / ".." / "shared" / "datasets" / "mnist-t10k").resolve()


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    """A fresh SQLite tracking store for one test; returns its URI."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def tiny(tmp_path):
    """Shrink any config to a seconds-long CPU run: `tiny(loss="focal")`."""
    from training.config import Config

    def make(**overrides):
        base = {
            "dataset": "digits",
            "epochs": 2,
            "batch_size": 64,
            "checkpoint_dir": str(tmp_path / "checkpoints"),
        }
        base.update(overrides)
        return Config(**base)

    return make
