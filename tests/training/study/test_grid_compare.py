"""Tiny real compares on the grid (digits, ce and focal, 1 seed, 1 epoch): two commands
started at the same instant on a new store, `workers=2`, and one worker give the same cells
the same test metrics, each cell once; a failed cell reruns alone on the same command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from training.run import trainer
from training.study import compare as compare_module
from training.study.grid_worker import CELL_TAG

REPO_ROOT = Path(__file__).resolve().parents[3]
WORDS = ["losses=ce,focal", "seeds=1", "epochs=1", "batch_size=32"]


@pytest.fixture(autouse=True)
def _no_storage_from_the_environment(monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def _cells(uri: str) -> dict[str, dict]:
    """cell key → test metrics of its FINISHED run; asserts one FINISHED run per cell and no
    run left RUNNING anywhere in the store."""
    client = mlflow.MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    finished = [r for r in runs if r.info.status == "FINISHED" and CELL_TAG in r.data.tags]
    keys = [r.data.tags[CELL_TAG] for r in finished]
    assert len(keys) == len(set(keys)), keys  # never counted twice
    return {r.data.tags[CELL_TAG]: {k: v for k, v in r.data.metrics.items()
                                    if k.startswith("test/")} for r in finished}


def _command(folder: Path, *extra: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    return ([sys.executable, "-m", "training.compare", *WORDS,
             f"checkpoint_dir={folder / 'ck'}", *extra], env)


def _start(folder: Path, *extra: str) -> subprocess.Popen:
    folder.mkdir(exist_ok=True)
    command, env = _command(folder, *extra)
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_two_commands_on_a_new_store_and_one_worker_give_the_same_cells(tmp_path):
    # Two launchers at the same instant on a store that does not exist yet (the schema, the
    # grid's study and the parent run are each made once; the cells are shared), and, beside
    # them, one worker alone on its own new store.
    procs = [_start(tmp_path / "two"), _start(tmp_path / "two"), _start(tmp_path / "one")]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)
    parents = {line.split()[2] for o in outputs[:2] for line in o.splitlines()
               if line.startswith("parent run ")}
    assert len(parents) == 1  # one compare
    two = _cells(f"sqlite:///{tmp_path / 'two' / 'mlflow.db'}")
    one = _cells(f"sqlite:///{tmp_path / 'one' / 'mlflow.db'}")
    assert sorted(one) == sorted(two) == ["digits|ce|0", "digits|focal|0"]
    for key, metrics in one.items():
        assert metrics and metrics == two[key], key  # exactly


@pytest.mark.slow
def test_workers_2_fills_the_grid_and_a_rerun_runs_only_the_failed_cell(
        mlflow_store, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)  # the workers run `python -m training.compare` from here
    words = [*WORDS, f"checkpoint_dir={tmp_path / 'ck'}"]
    assert compare_module.main([*words, "workers=2"]) == 0
    out = capsys.readouterr().out
    assert "[worker 0]" in out and "[worker 1]" in out
    cells = _cells(mlflow_store)
    assert sorted(cells) == ["digits|ce|0", "digits|focal|0"]

    # A new compare (seeds=2) whose focal seed 1 fails once: exit 1, then RESUME=<parent>
    # runs that cell alone, and the report counts every seed.
    real, calls, failed = trainer.train, [], []

    def failing_once(config, **kwargs):
        calls.append((config.loss, config.seed))
        if (config.loss, config.seed) == ("focal", 1) and not failed:
            failed.append(True)
            raise RuntimeError("disk on fire")
        return real(config, **kwargs)

    monkeypatch.setattr(trainer, "train", failing_once)
    two_seeds = [w for w in words if not w.startswith("seeds=")] + ["seeds=2"]
    assert compare_module.main(two_seeds) == 1
    captured = capsys.readouterr()
    assert "1 of 4 cells failed" in captured.err
    parent = re.search(r"^parent run (\w+) in experiment", captured.out, re.M).group(1)
    calls.clear()
    assert compare_module.main([f"resume={parent}"]) == 0  # make compare RESUME=<parent>
    assert calls == [("focal", 1)]
    out = capsys.readouterr().out
    assert f"parent run {parent}" in out
    runs = mlflow.MlflowClient(mlflow_store).search_runs(
        [mlflow.get_experiment_by_name("compare-digits").experiment_id],
        f"tags.mlflow.parentRunId = '{parent}'")
    seeds = [r for r in runs if CELL_TAG in r.data.tags]
    assert sorted(r.info.status for r in seeds) == ["FINISHED"] * 4
    assert "n = 2" in out or "(n = 2)" in out
