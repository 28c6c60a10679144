"""The checkpoint of a run, owned here: its folder, files, restore, and the run tag to it.

A run's folder is `<checkpoint_dir>/<run_id>/` (a relative `checkpoint_dir` is anchored at the
repository root, like the default tracking store), pointed to by the run's tag
`losslab.checkpoint_dir`. It holds:
- `initial.weights.h5`: the weights before training (the landscape's origin);
- `last.keras`: model weights + optimizer state after the last completed epoch (moments,
  iteration count, so a cosine schedule continues where it stopped);
- `state.json`: completed epochs, metric history, sampler state (seed, next epoch: the
  pipelines are pure functions of both), the dropout seed-generator states, which `.keras`
  does not store, and the SHA-256 of its model file (`model_sha256`);
- `previous.keras` + `previous.state.json`: the pair of the epoch before (kept in case the
  newest pair is damaged);
- `final.weights.h5`: the weights after the last epoch.

A new pair is written to temporary names (flushed to disk), then the current pair becomes the
previous one and the new pair takes its place by renames, with SIGINT/SIGTERM held back. A
state file is paired with whichever model file has its checksum, so a process killed with
SIGKILL between two renames still leaves a pair that verifies. On resume (`resume_state`) the
newest state file whose model file verifies is used, and named; when none verifies, the
resume is refused (exit 2) naming every file and what is wrong with it: a run never silently
starts again from scratch. state.json also records the optimizer's iteration count, which
`restore` checks against the model file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
import warnings
import zipfile
from pathlib import Path

import keras
import mlflow
import numpy as np

from training.config import ConfigError
from training.reachable import check_folder
from training.run.tracking import existing_run
from training.tags import CHECKPOINT_TAG

REPO_ROOT = Path(__file__).resolve().parents[2]
INITIAL, FINAL, LAST, STATE = "initial.weights.h5", "final.weights.h5", "last.keras", "state.json"
PREVIOUS, PREVIOUS_STATE = "previous.keras", "previous.state.json"


def run_folder(checkpoint_dir: str | Path, run_id: str) -> Path:
    """`<checkpoint_dir>/<run_id>`, a relative checkpoint_dir taken from the repository root."""
    root = Path(checkpoint_dir)
    return (root if root.is_absolute() else REPO_ROOT / root) / run_id


def check_root(checkpoint_dir: str | Path) -> None:
    """TrackingError (exit 2, before any run exists) when `checkpoint_dir` cannot be created
    or written."""
    root = Path(checkpoint_dir)
    check_folder(root if root.is_absolute() else REPO_ROOT / root,
                 f"checkpoint_dir={checkpoint_dir}")


def folder_of(run_id: str, checkpoint_dir: str | Path) -> Path:
    """Where an existing run's checkpoint is: its tag, else `run_folder`."""
    tags = existing_run(run_id).data.tags  # ConfigError for an unknown run
    return Path(tags[CHECKPOINT_TAG]) if CHECKPOINT_TAG in tags else run_folder(
        checkpoint_dir, run_id)


def start(model: keras.Model, folder: Path) -> None:
    """A new run's folder with its initial weights, tagged on the active run."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_weights(folder / INITIAL)
    mlflow.set_tag(CHECKPOINT_TAG, str(folder.resolve()))


def save_final(model: keras.Model, folder: Path) -> tuple[Path, Path]:
    """Writes the final weights; → (initial, final) weight files, for upload."""
    model.save_weights(folder / FINAL)
    return folder / INITIAL, folder / FINAL


def stored_weights(model: keras.Model, path: Path) -> list[np.ndarray]:
    """The weights stored in `path`, leaving the model's current weights in place."""
    current = model.get_weights()
    with warnings.catch_warnings():  # the file predates the optimizer's slots: not restored
        warnings.simplefilter("ignore", UserWarning)
        model.load_weights(path)
    stored = model.get_weights()
    model.set_weights(current)
    return stored


class Checkpoint(keras.callbacks.Callback):
    """Every epoch: `last.keras` and `state.json` in `directory` (see the module docstring)."""

    def __init__(self, directory: Path, history: dict[str, list[float]], seed: int):
        super().__init__()
        self.directory = Path(directory)
        self.history = history
        self.seed = seed

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp_model = self.directory / "last.tmp.keras"
        self.model.save(tmp_model)
        _flush(tmp_model)
        state = {
            "epoch": epoch + 1,
            "iterations": int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)),
            "sampler": {"seed": self.seed, "next_epoch": epoch + 1},
            "seed_generators": [_to_list(v) for v in seed_generator_states(self.model)],
            "history": self.history,
            "model_sha256": sha256(tmp_model),
        }
        state["state_sha256"] = _state_digest(state)
        tmp_state = self.directory / "state.tmp.json"
        tmp_state.write_text(json.dumps(state))
        _flush(tmp_state)
        folder = self.directory
        with _signals_held():  # each step leaves a state file whose model file verifies
            if (folder / LAST).is_file() and (folder / STATE).is_file():
                os.replace(folder / LAST, folder / PREVIOUS)
                os.replace(folder / STATE, folder / PREVIOUS_STATE)
            os.replace(tmp_model, folder / LAST)
            os.replace(tmp_state, folder / STATE)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _state_digest(state: dict) -> str:
    """SHA-256 of the state's own content (all but this field), in a canonical JSON form."""
    content = {k: v for k, v in state.items() if k != "state_sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _flush(path: Path) -> None:
    """Force the file's bytes to disk before it is renamed into place (a crash of the
    machine must not leave a renamed but empty file)."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


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


def load_state(directory: Path) -> dict:
    """The last completed epoch and metric history of a checkpoint folder."""
    return json.loads((Path(directory) / "state.json").read_text())


def verified_state(directory: Path) -> tuple[dict | None, list[str]]:
    """The newest state of `directory` whose model file verifies, with `"checkpoint"` set to
    that file's name → (state or None, what is wrong with each newer or unusable file).

    A state file verifies when it is JSON with the fields `restore` needs, its own content
    has its `state_sha256` and a model file of the folder has its `model_sha256`. A state written before checksums existed (no
    `model_sha256`) is paired with `last.keras` when that is an intact zip archive."""
    directory = Path(directory)
    models = {name: directory / name for name in (LAST, PREVIOUS) if (directory / name).is_file()}
    digests: dict[str, str] = {}
    problems, states = [], []
    for name in (STATE, PREVIOUS_STATE):
        path = directory / name
        if not path.is_file():
            continue
        try:
            state = json.loads(path.read_text())
            int(state["epoch"]), dict(state["history"]), list(state["seed_generators"])
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            problems.append(f"{name} is unreadable ({type(exc).__name__})")
            continue
        if "state_sha256" in state and state["state_sha256"] != _state_digest(state):
            problems.append(f"{name} does not match its checksum")
            continue
        states.append((name, state))
    for name, state in sorted(states, key=lambda item: -int(item[1]["epoch"])):
        wanted = state.get("model_sha256")
        if wanted is None:
            if name == STATE and LAST in models and _intact_zip(models[LAST]):
                return {**state, "checkpoint": LAST}, problems
            problems.append(f"{name} (epoch {state['epoch']}) has no checksum and "
                            f"{LAST} is not an intact archive")
            continue
        for model_name, model_path in models.items():
            if model_name not in digests:
                digests[model_name] = sha256(model_path)
            if digests[model_name] == wanted:
                return {**state, "checkpoint": model_name}, problems
        problems.append(f"{name} (epoch {state['epoch']}): no model file has its checksum "
                        f"({', '.join(models) or 'no model file'} damaged or missing)")
    return None, problems


def _intact_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def resume_state(directory: Path, run_id: str, epochs: int) -> dict:
    """The newest verified state of the run to resume (`verified_state`), checked before the
    run is reopened; prints which checkpoint it is, and why newer ones were skipped.

    Raises:
        ConfigError: no checkpoint in `directory`, none that verifies (the message names the
            files), or the run already completed `epochs`.
    """
    directory = Path(directory)
    present = sorted(p.name for p in directory.glob("*") if p.name in (
        LAST, STATE, PREVIOUS, PREVIOUS_STATE)) if directory.is_dir() else []
    if not any(name in present for name in (STATE, PREVIOUS_STATE)):
        raise ConfigError(
            f"resume={run_id}: no checkpoint in {directory} (state.json and last.keras are "
            "written after each completed epoch; a run stopped during epoch 1 cannot resume)"
        )
    state, problems = verified_state(directory)
    if state is None:
        raise ConfigError(
            f"resume={run_id}: no checkpoint in {directory} verifies ({'; '.join(problems)}); "
            "nothing was resumed: restore the files, or train a new run"
        )
    skipped = f"; skipped: {'; '.join(problems)}" if problems else ""
    print(f"checkpoint {directory / state['checkpoint']} (epoch {state['epoch']}) "
          f"verified{skipped}", flush=True)
    if state["epoch"] >= epochs:
        raise ConfigError(
            f"resume={run_id}: the run already completed {state['epoch']} of epochs={epochs}; "
            f"nothing to resume (pass epochs > {state['epoch']} to train further)"
        )
    return state


def restore(model: keras.Model, directory: Path, state: dict) -> None:
    """Load `last.keras` into `model`, built and compiled from the run's own config.

    Only weights and optimizer variables are read (`load_weights`): no class or function in the
    archive's config is ever deserialised, so a tampered checkpoint cannot run code.
    """
    model.optimizer.build(model.trainable_variables)  # creates the slots the file fills
    model.load_weights(Path(directory) / state.get("checkpoint", LAST))
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
