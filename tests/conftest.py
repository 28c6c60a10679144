"""Shared fixtures: an isolated MLflow store per test and a config shrunk to seconds on CPU."""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
# CI has the real MNIST test split at the same place relative to the clone.
MNIST_T10K = (REPO_ROOT / ".." / "shared" / "datasets" / "mnist-t10k").resolve()


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test`), files with more end-to-end (`slow`) tests come first.

    `--dist loadfile` hands whole files to whichever worker is free, in collection order. In
    path order the long end-to-end files come last, and one worker would run the last of them
    alone while the other idles; heaviest first, the many short loss tests fill the end. The
    count of slow tests stands in for a file's cost (no timing cache to go stale). Every worker
    collects, and they must agree on the order: the sort is deterministic (stable, no timing).
    A plain `pytest` run keeps path order.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    slow = collections.Counter(str(item.path) for item in items if item.get_closest_marker("slow"))
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        first.setdefault(str(item.path), index)
    items.sort(key=lambda item: (-slow[str(item.path)], first[str(item.path)]))


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory) -> Path:
    """An empty, fully migrated SQLite store, made once per test process.

    MLflow builds a new store's schema with ~50 Alembic migrations: 1.5–2.5 CPU-s, paid by
    each of the ~60 tests that want a store of their own. A copy of this file is the same
    empty store for 0.05 s. The tests of first-time creation itself (the fresh-store race,
    the quiet first run) make their stores from nothing and do not use this.
    """
    import mlflow

    folder = tmp_path_factory.mktemp("empty-store")
    path = folder / "mlflow.db"
    # The default experiment's artifact root (./mlruns) is fixed at creation: this folder's.
    with contextlib.chdir(folder):
        mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(scope="session")
def new_store(_empty_store):
    """`new_store(path) -> "sqlite:///<path>"`: an empty store at `path` (a copy)."""

    def make(path: Path) -> str:
        shutil.copyfile(_empty_store, path)
        return f"sqlite:///{path}"

    return make


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch, new_store) -> str:
    """A new, empty SQLite tracking store for one test; returns its URI."""
    import mlflow

    uri = new_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # The experiment an earlier test set stays "active" in MLflow's module state; in this new
    # store its id names nothing (a bare start_run() then fails with "No Experiment with id").
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):  # set_experiment sets them
        monkeypatch.delenv(name, raising=False)
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
