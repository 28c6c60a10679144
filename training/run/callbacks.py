"""Keras callbacks of the trainer: stop on a non-finite loss, evaluate, log (the checkpoint
callback is `training.run.checkpoint.Checkpoint`).

Order matters at the end of an epoch: `EpochEvaluation` computes val metrics and appends the
epoch's values to the history, `Checkpoint` saves model + history, and only then
`MlflowLogger` logs the epoch. A crash between the last two leaves a checkpoint whose history
holds metrics MLflow lacks; on resume those are back-filled, so every epoch ends up logged
exactly once (never duplicated, never missing).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import keras

from training import cli
from training.errors import RunKilled
from training.run import tracking


class NonFiniteLoss(RuntimeError):
    """Training produced NaN/inf; the message says where."""


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop at the first batch whose running loss is NaN/inf (cost: one host sync per step),
    and at the first batch after a SIGTERM (`training.cli.stop_requested`)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if cli.stop_requested():  # a SIGTERM whose RunKilled got lost in a library
            raise RunKilled("SIGTERM")
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


class MlflowLogger(keras.callbacks.Callback):
    """Logs the epoch's values at step = epoch number (from 1) and renews the run's
    heartbeat tag (`training.store`), in one round trip."""

    def __init__(self, history: dict[str, list[float]]):
        super().__init__()
        self.history = history

    def on_epoch_end(self, epoch, logs=None):
        tracking.log_metrics({k: v[epoch] for k, v in self.history.items()}, step=epoch + 1,
                             beat=True)
