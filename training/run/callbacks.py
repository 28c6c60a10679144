"""Keras callbacks of the trainer: stop on a non-finite loss, evaluate, checkpoint, log.

Order matters at the end of an epoch: `EpochEvaluation` computes val metrics and appends the
epoch's values to the history, `Checkpoint` saves model + history, and only then
`MlflowLogger` logs the epoch. A crash between the last two leaves a checkpoint whose history
holds metrics MLflow lacks; on resume those are back-filled, so every epoch ends up logged
exactly once (never duplicated, never missing).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from training.config import ConfigError
from training.run import tracking


class NonFiniteLoss(RuntimeError):
    """Training produced NaN/inf; the message says where."""


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop at the first batch whose running loss is NaN/inf (cost: one host sync per step)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLoss(f"non-finite loss at epoch {self._epoch + 1}, step {batch + 1}")


class EpochEvaluation(keras.callbacks.Callback):
    """Appends this epoch's train/… and val/… values to `history` (lists indexed by epoch)
    and puts the val metrics into Keras's `logs` as `val_<name>`, so that `History`,
    `EarlyStopping`, `ReduceLROnPlateau` and `ModelCheckpoint(monitor=...)` placed after it
    see them. `print_lines`: one line per epoch (when Keras's progress bar is off)."""

    def __init__(
        self,
        evaluate_val: Callable[[], dict],
        history: dict[str, list[float]],
        print_lines: bool = True,
    ):
        super().__init__()
        self._evaluate_val = evaluate_val
        self.history = history
        self.print_lines = print_lines

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self._started
        values = {"train/loss": float(logs["loss"])}
        for key in ("active_fraction", "mean_pos_distance", "mean_neg_distance"):
            if key in logs:
                values[f"train/{key}"] = float(logs[key])
        values["train/lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        val = self._evaluate_val()
        values.update({f"val/{k}": v for k, v in val.items()})
        logs.update({f"val_{k}": v for k, v in val.items()})  # same dict the later callbacks get
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)
        if self.print_lines:
            shown = "  ".join(f"{k}={v:.4f}" for k, v in values.items() if k != "train/lr")
            total = self.params["epochs"]
            print(f"epoch {epoch + 1}/{total} ({seconds:.1f} s): {shown}", flush=True)


class Checkpoint(keras.callbacks.Callback):
    """Every epoch, in `directory` (= `<checkpoint_dir>/<run_id>/`, tagged on the run):

    - `last.keras`: model weights + optimizer state (moments, iteration count, so a cosine
      schedule continues where it stopped);
    - `state.json`: completed epochs, metric history, sampler state (seed, next epoch: the
      pipelines are pure functions of both) and the dropout seed-generator states, which
      `.keras` does not store;
    - `initial.weights.h5` (written by the trainer before epoch 1): the landscape's origin.

    Both files are written to temporary names, then renamed with SIGINT/SIGTERM held back, so
    a Ctrl-C never leaves a torn or mismatched pair (state.json also records the optimizer's
    iteration count, which `restore_checkpoint` checks against last.keras).
    """

    def __init__(self, directory: Path, history: dict[str, list[float]], seed: int):
        super().__init__()
        self.directory = Path(directory)
        self.history = history
        self.seed = seed

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp_model = self.directory / "last.tmp.keras"
        self.model.save(tmp_model)
        state = {
            "epoch": epoch + 1,
            "iterations": int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)),
            "sampler": {"seed": self.seed, "next_epoch": epoch + 1},
            "seed_generators": [_to_list(v) for v in seed_generator_states(self.model)],
            "history": self.history,
        }
        tmp_state = self.directory / "state.tmp.json"
        tmp_state.write_text(json.dumps(state))
        with _signals_held():
            os.replace(tmp_model, self.directory / "last.keras")
            os.replace(tmp_state, self.directory / "state.json")


@contextlib.contextmanager
def _signals_held():
    """Defer SIGINT/SIGTERM until the block is done (the two renames happen together).

    Masking the main thread with pthread_sigmask is not enough: the kernel then hands a
    process-directed signal to one of TensorFlow's threads, and Python still runs the handler
    in the main thread at its next bytecode, inside the block. So the handlers are swapped for
    one that only records the signal, and recorded signals are re-raised afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be changed (and only run) in the main thread
        return
    pending: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for signum in pending:
            signal.raise_signal(signum)


class MlflowLogger(keras.callbacks.Callback):
    """Logs the epoch's values at step = epoch number (from 1), in one round trip."""

    def __init__(self, history: dict[str, list[float]]):
        super().__init__()
        self.history = history

    def on_epoch_end(self, epoch, logs=None):
        tracking.log_metrics({k: v[epoch] for k, v in self.history.items()}, step=epoch + 1)


def load_state(directory: Path) -> dict:
    """The last completed epoch and metric history of a checkpoint folder."""
    return json.loads((Path(directory) / "state.json").read_text())


def resume_state(directory: Path, run_id: str, epochs: int) -> dict:
    """`state.json` of the run to resume, checked before the run is reopened.

    Raises:
        ConfigError: no checkpoint in `directory`, or the run already completed `epochs`.
    """
    path = Path(directory) / "state.json"
    if not path.is_file() or not (Path(directory) / "last.keras").is_file():
        raise ConfigError(
            f"resume={run_id}: no checkpoint in {directory} (state.json and last.keras are "
            "written after each completed epoch; a run stopped during epoch 1 cannot resume)"
        )
    state = load_state(directory)
    if state["epoch"] >= epochs:
        raise ConfigError(
            f"resume={run_id}: the run already completed {state['epoch']} of epochs={epochs}; "
            f"nothing to resume (pass epochs > {state['epoch']} to train further)"
        )
    return state


def restore_checkpoint(model: keras.Model, directory: Path, state: dict) -> None:
    """Load `last.keras` into `model`, built and compiled from the run's own config.

    Only weights and optimizer variables are read (`load_weights`): no class or function in the
    archive's config is ever deserialised, so a tampered checkpoint cannot run code.
    """
    model.optimizer.build(model.trainable_variables)  # creates the slots the file fills
    model.load_weights(Path(directory) / "last.keras")
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    if "iterations" in state and iterations != state["iterations"]:
        raise ValueError(
            f"checkpoint {directory} is inconsistent: last.keras is at optimizer step "
            f"{iterations}, state.json at step {state['iterations']} (epoch {state['epoch']})"
        )
    variables = seed_generator_states(model)
    saved = state["seed_generators"]
    if len(variables) != len(saved):
        raise ValueError(
            f"checkpoint {directory} holds {len(saved)} seed-generator states, the model has "
            f"{len(variables)}: it was written by a different model"
        )
    for variable, value in zip(variables, saved, strict=True):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def seed_generator_states(model: keras.Model) -> list:
    """The RNG state variables of the model's layers (dropout masks), in layer order.

    `model.variables` = weights + seed-generator states; `model.weights` excludes the latter.
    """
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def _to_list(variable) -> list:
    return np.asarray(keras.ops.convert_to_numpy(variable)).tolist()
