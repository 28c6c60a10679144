"""N processes opening one new SQLite store at the same instant: one migrates it, under the
lock of `training.store.open_store`, and every one of them can use it.

Two `make tune` started together once left a store half-migrated for good (`table
_alembic_tmp_metrics already exists`, then every command failed on it). Here the processes
only open the store (no TensorFlow, no training), released by one barrier, 10 times each
for 2 and for 4 processes, each time on a new store.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import traceback
from pathlib import Path

import pytest

REPETITIONS = 10


def _opener(barrier, folder: str, results, index: int) -> None:
    """One process: at each barrier release, open store number `rep` and use it."""
    import mlflow

    from training.store import open_store

    for rep in range(REPETITIONS):
        uri = f"sqlite:///{folder}/{rep}/mlflow.db"
        barrier.wait(timeout=120)
        try:
            client = open_store(uri)
            client.create_experiment(f"opener-{index}")
            results.put((rep, index, "ok"))
        except Exception:  # noqa: BLE001 (reported to the test, which prints it)
            results.put((rep, index, traceback.format_exc()[-1500:]))
        mlflow.set_tracking_uri(None)


@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 4])
def test_processes_released_together_on_a_new_store(processes, tmp_path):
    context = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    barrier, results = context.Barrier(processes), context.Queue()
    for rep in range(REPETITIONS):
        (tmp_path / str(rep)).mkdir()
    workers = [context.Process(target=_opener, args=(barrier, str(tmp_path), results, i))
               for i in range(processes)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in range(processes * REPETITIONS)]
    for worker in workers:
        worker.join(timeout=60)
    failures = [o for o in outcomes if o[2] != "ok"]
    assert failures == [], failures[0][2]
    assert [w.exitcode for w in workers] == [0] * processes
    for rep in range(REPETITIONS):
        db = Path(tmp_path / str(rep) / "mlflow.db")
        with sqlite3.connect(db) as connection:
            (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            tables = {row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            names = {row[0] for row in connection.execute("SELECT name FROM experiments")}
        assert version and not any(t.startswith("_alembic_tmp") for t in tables), tables
        assert names == {"Default", *(f"opener-{i}" for i in range(processes))}
