"""Checkpoint + resume: an interrupted run, resumed, ends exactly like an uninterrupted one.

The interruption is injected in-process (KeyboardInterrupt from a callback, as Ctrl-C raises
it); tests/training/test_faults.py sends real signals to a real process.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

from training.config import ConfigError
from training.run.callbacks import MlflowLogger
from training.run.checkpoint import restore as restore_checkpoint
from training.run.checkpoint import seed_generator_states
from training.train import train

PER_EPOCH = ["train/loss", "train/lr", "val/loss", "val/accuracy", "val/ece"]


def _history(client, run_id, key):
    """[(step, value)] in step order, every logged point (duplicates would show)."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _interrupt_logging_at(monkeypatch, epoch_index) -> dict:
    """Ctrl-C right after the checkpoint of `epoch_index`, before MLflow logs that epoch.

    The worst moment: the checkpoint holds one epoch more than MLflow, which resume back-fills.
    Returns the model's and optimizer's variables at that moment (filled in when it happens).
    """
    captured = {}

    def on_epoch_end(self, epoch, logs=None):
        if epoch == epoch_index:
            captured["model"] = [np.array(v) for v in self.model.variables]
            captured["optimizer"] = [np.array(v) for v in self.model.optimizer.variables]
            raise KeyboardInterrupt
        original(self, epoch, logs)

    original = MlflowLogger.on_epoch_end
    monkeypatch.setattr(MlflowLogger, "on_epoch_end", on_epoch_end)
    return captured


def _assert_restores(config, ckpt: Path, captured: dict) -> None:
    """A model rebuilt from the config and restored equals the model that was checkpointed:
    weights, BatchNorm statistics, dropout seed-generator state, optimizer step and moments."""
    from training.data import load_splits
    from training.run.builders import build_loss, build_model, build_optimizer

    splits = load_splits(config.dataset, config.task, seed=config.seed)
    keras.utils.set_random_seed(123)  # another construction-time RNG than the run's
    model = build_model(config, splits.x_train.shape[1:], splits.num_classes)
    loss = build_loss(config, splits.y_train, splits.num_classes)
    model.compile(optimizer=build_optimizer(config, 1), loss=loss)
    restore_checkpoint(model, ckpt, json.loads((ckpt / "state.json").read_text()))
    assert len(seed_generator_states(model)) == 1  # the classifier's dropout layer
    assert int(np.array(model.optimizer.iterations)) > 0
    for got, want in zip(model.variables, captured["model"], strict=True):
        np.testing.assert_array_equal(np.array(got), want)
    for got, want in zip(model.optimizer.variables, captured["optimizer"], strict=True):
        np.testing.assert_array_equal(np.array(got), want)


@pytest.mark.slow
def test_interrupted_and_resumed_run_equals_uninterrupted(tiny, mlflow_store, monkeypatch):
    """Exact: same batches (pipeline = f(seed, epoch)), same weights, optimizer and dropout
    RNG from the checkpoint, deterministic ops. (The retrieval/P×K path was checked the same
    way once, also exact: the data tests pin its `initial_epoch` replay.)

    It also shows that a seed gives the same run twice: epoch 1 of the interrupted run (its
    checkpoint, back-filled on resume) equals epoch 1 of the reference bit for bit."""
    config = tiny(loss="ce", epochs=2, seed=5)
    reference = train(config)

    with monkeypatch.context() as patch:
        captured = _interrupt_logging_at(patch, epoch_index=0)
        with pytest.raises(KeyboardInterrupt) as caught:
            train(config)
    run_id = caught.value.losslab_run_id
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    ckpt = Path(run.data.tags["losslab.checkpoint_dir"])
    assert ckpt == (Path(config.checkpoint_dir) / run_id).resolve()
    assert (ckpt / "initial.weights.h5").is_file()
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 1 and state["sampler"] == {"seed": 5, "next_epoch": 1}
    assert _history(client, run_id, "train/loss") == []  # epoch 1 checkpointed, not logged
    _assert_restores(config, ckpt, captured)

    resumed = train(config.replace(resume=run_id))

    assert resumed["run_id"] == run_id  # the same MLflow run continues
    assert client.get_run(run_id).info.status == "FINISHED"
    for key in PER_EPOCH:
        got = _history(client, run_id, key)
        want = _history(client, reference["run_id"], key)
        assert [s for s, _ in got] == [1, 2], key  # every epoch exactly once
        assert [v for _, v in got] == [v for _, v in want], key  # op determinism: exact
    test_keys = [k for k in reference if k not in ("run_id", "experiment_id", "wall_seconds")]
    assert test_keys
    for key in test_keys:
        assert resumed[key] == reference[key], key


def test_resume_of_unknown_run_is_bad_input(tiny, mlflow_store):
    with pytest.raises(ConfigError, match="resume=0123abc: no such run"):
        train(tiny(resume="0123abc"))


def test_resume_without_checkpoint_or_after_last_epoch_is_refused(tiny, mlflow_store, tmp_path):
    """Checked before the run is reopened: its status does not change."""
    mlflow.set_experiment("resume-checks")
    with mlflow.start_run() as run:
        mlflow.set_tag("losslab.checkpoint_dir", str(tmp_path / "ckpt"))
    run_id = run.info.run_id
    with pytest.raises(ConfigError, match="no checkpoint in"):
        train(tiny(resume=run_id))

    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "last.keras").write_bytes(b"weights")
    state = {"epoch": 2, "history": {}, "seed_generators": [],
             "model_sha256": hashlib.sha256(b"weights").hexdigest()}
    (tmp_path / "ckpt" / "state.json").write_text(json.dumps(state))
    with pytest.raises(ConfigError, match="already completed 2 of epochs=2"):
        train(tiny(resume=run_id, epochs=2))
    assert mlflow.MlflowClient().get_run(run_id).info.status == "FINISHED"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))


def _flip_a_digit(path: Path) -> None:
    """Still valid JSON, one history value changed: only the state's own checksum sees it."""
    text = path.read_text()
    at = text.index('"history"') + text[text.index('"history"'):].index(".") + 1
    digit = "1" if text[at] != "1" else "2"
    path.write_text(text[:at] + digit + text[at + 1:])


@pytest.mark.slow
def test_a_damaged_checkpoint_resumes_from_the_newest_that_verifies(
    tiny, mlflow_store, tmp_path, capsys
):
    """Issue 28: a truncated or flipped `last.keras` or `state.json` is found by its checksum;
    resume uses the previous pair and says so; when no pair verifies, exit 2 naming the files
    (never a silent start from scratch)."""
    import shutil

    from training.run.checkpoint import verified_state
    from training.train import main as train_main

    config = tiny(loss="ce", epochs=2)
    run_id = train(config)["run_id"]
    folder = Path(config.checkpoint_dir) / run_id
    assert verified_state(folder)[0]["checkpoint"] == "last.keras"
    assert json.loads((folder / "previous.state.json").read_text())["epoch"] == 1
    damages = {"last.keras": (_truncate, _flip), "state.json": (_truncate, _flip, _flip_a_digit)}
    for name, kinds in damages.items():
        for damage in kinds:
            copy = tmp_path / f"{name}-{damage.__name__}"
            shutil.copytree(folder, copy)
            damage(copy / name)
            state, problems = verified_state(copy)
            assert (state["epoch"], state["checkpoint"]) == (1, "previous.keras"), (name, damage)
            assert len(problems) == 1 and problems[0].startswith("state.json"), problems

    # The real command: last.keras truncated; the run continues after epoch 1, and says so.
    capsys.readouterr()
    _truncate(folder / "last.keras")
    assert train_main([f"resume={run_id}", "epochs=3"]) == 0
    out = capsys.readouterr().out
    assert (f"checkpoint {folder / 'previous.keras'} (epoch 1) verified; skipped: state.json "
            "(epoch 2): no model file has its checksum") in out
    assert f"resuming run {run_id} after epoch 1" in out
    assert verified_state(folder)[0]["epoch"] == 3

    # Nothing verifies: exit 2, one line naming every file, the run untouched.
    client = mlflow.MlflowClient()
    before = client.get_run(run_id)
    _flip(folder / "last.keras")
    _truncate(folder / "previous.state.json")
    assert train_main([f"resume={run_id}", "epochs=4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"error: resume={run_id}: no checkpoint in {folder} verifies (" in err
    assert "previous.state.json is unreadable (JSONDecodeError)" in err
    assert "state.json (epoch 3): no model file has its checksum" in err
    after = client.get_run(run_id)
    assert (after.info.status, after.info.end_time) == (before.info.status, before.info.end_time)
