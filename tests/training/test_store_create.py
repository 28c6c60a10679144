"""A new SQLite store is created whole or not at all: the schema goes into a temporary file
that is renamed into place when complete (a worker signalled mid-migration left a store that
every later command refused)."""

from __future__ import annotations

import mlflow
import pytest

from training import store
from training.errors import RunKilled


def test_a_new_store_is_usable_and_leaves_no_temporary_file(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = store.open_store(uri, clean=False)
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".m.db")]
    # A fresh MLflow client (no cached store object) reads the same schema.
    assert mlflow.MlflowClient(uri).search_experiments()[0].name == "Default"


def test_a_signal_halfway_through_the_schema_leaves_nothing(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    real = store._initialize_tables

    def interrupted(engine):
        from mlflow.store.db.base_sql_model import Base

        Base.metadata.tables["experiments"].create(engine)  # part of the schema, then the signal
        raise RunKilled("signal 15")

    monkeypatch.setattr(store, "_initialize_tables", interrupted)
    with pytest.raises(RunKilled):
        store._create_sqlite_atomically(uri)
    assert not (tmp_path / "m.db").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".m.db")]
    monkeypatch.setattr(store, "_initialize_tables", real)
    client = store.open_store(uri, clean=False)  # the next command creates it whole
    assert client.search_experiments()[0].name == "Default"
