"""MLflow tracking: where runs go, how a run is opened and always closed, what it records.

Metric names are grouped (`train/loss`, `val/accuracy`, `test/map_at_r`) and every per-epoch
value is logged with step = epoch number starting at 1 (MLflow's own Keras callback logs
validation metrics without a step, MLflow issue #14293, so we log ourselves).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import typing
import warnings
from pathlib import Path

import keras
import mlflow
import mlflow.artifacts
import numpy as np
from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException

from training import metric_catalog
from training.cli import stop_requested
from training.config import Config, ConfigError
from training.data.images import ArrayImages
from training.errors import RunKilled, TrackingError  # noqa: F401 (re-exported)
from training.reachable import (  # noqa: F401 (re-exported)
    DEFAULT_URI,
    check_reachable,
    check_store,
    redact,
    scrub,
    tracking_uri,
    without_credentials,
)
from training.reopen import start_existing_run
from training.store import heartbeat, heartbeat_tag, liveness_tags, open_store, store_lock
from training.tags import ERROR_TAG

REPO_ROOT = Path(__file__).resolve().parents[2]


# MLflow 3's UI opens an experiment of this kind in its model-training view (runs, metrics,
# models) instead of the GenAI view (traces, judges, prompts).
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


# --- where runs go ---------------------------------------------------------------------


def experiment_name(config: Config) -> str:
    """One experiment per dataset and task: `digits-classification`, `idx-mnist-t10k-retrieval`."""
    if config.experiment:
        return config.experiment
    dataset = config.dataset
    if dataset.startswith("idx:"):
        dataset = "idx-" + Path(dataset[4:]).resolve().name
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', dataset)}-{config.task}"


# --- an existing run (resume) ----------------------------------------------------------


def existing_run(run_id: str):
    """The run `run_id` of the tracking store; ConfigError when there is none."""
    uri = tracking_uri()
    client = open_store(uri)
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        raise ConfigError(f"resume={run_id}: no such run in the tracking store {redact(uri)} "
                          f"({scrub(exc.message)})") from None


def logged_config(run_id: str) -> dict:
    """The resolved config a run logged (`config.json`), as plain values."""
    existing_run(run_id)
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/config.json")
    except (MlflowException, OSError) as exc:
        raise ConfigError(f"resume={run_id}: the run has no readable config.json "
                          f"({scrub(str(exc))})") from None
    return json.loads(text)


# --- opening and closing a run ---------------------------------------------------------


def ensure_experiment(name: str, uri: str) -> str:
    """The experiment's id, created if missing (serialised across processes; the store is
    opened by `training.store.open_store` first).

    On a SQLite store a new experiment keeps its artifacts beside the database, in
    `<db folder>/mlruns/<name>/`: MLflow's default is `./mlruns` of whatever directory the
    process happens to run in, which scatters a store's artifacts across working directories.
    """
    with store_lock(uri):
        client = mlflow.MlflowClient()
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            if existing.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
                client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND_TAG,
                                          EXPERIMENT_KIND)
            return existing.experiment_id
        location = None
        if uri.startswith("sqlite:///"):
            db = Path(uri.removeprefix("sqlite:///").split("?")[0]).resolve()
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
            location = (db.parent / "mlruns" / safe).as_uri()
        return client.create_experiment(
            name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )


@contextlib.contextmanager
def open_run(
    config: Config,
    *,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
):
    """Start (or resume) a run with `tags`; it ends FINISHED, FAILED (error tagged) or KILLED.
    `config.system_metrics` turns on MLflow's system metrics (CPU, memory, GPU).

    The run is always closed, whatever happens inside: a crashed training never leaves a
    run in RUNNING state. While it is open it carries the host, PID and a heartbeat of this
    process (`training.store`), so the run of a process killed with SIGKILL can be told apart
    and closed by the next command.
    """
    uri = tracking_uri()
    open_store(uri)
    options = {"parent_run_id": parent_run_id, "nested": parent_run_id is not None,
               "tags": {**(tags or {}), **liveness_tags()},  # host, PID, heartbeat
               "log_system_metrics": config.system_metrics}
    if run_id:  # a resume: the run's own experiment, whatever this process had active
        run = start_existing_run(run_id, **options)
    else:
        run = mlflow.start_run(
            experiment_id=ensure_experiment(experiment_name(config), uri),
            run_name=config.run_name or f"{config.loss}-seed{config.seed}",
            **options,
        )
    try:
        with heartbeat(run.info.run_id):
            yield run
    except (KeyboardInterrupt, RunKilled) as exc:
        _retry(lambda: mlflow.set_tag("losslab.status_reason", "interrupted (SIGINT/SIGTERM)"))
        _retry(lambda: mlflow.end_run("KILLED"))
        _mark(exc, run, "KILLED")
        raise
    except BaseException as exc:
        if stop_requested():  # RunKilled re-raised as another error (TensorFlow's tracing)
            _retry(lambda: mlflow.set_tag("losslab.status_reason", "interrupted (SIGTERM)"))
            _retry(lambda: mlflow.end_run("KILLED"))
            killed = RunKilled(f"SIGTERM (surfaced as {type(exc).__name__})")
            _mark(killed, run, "KILLED")
            raise killed from exc
        reason = scrub(f"{type(exc).__name__}: {exc}")[:5000]  # MLflow caps tags at 8,000
        _retry(lambda: mlflow.set_tag(ERROR_TAG, reason))
        _retry(lambda: mlflow.end_run("FAILED"))
        _mark(exc, run, "FAILED")
        raise
    else:
        _retry(lambda: mlflow.end_run("FINISHED"))


def _mark(exc: BaseException, run, status: str) -> None:
    """Tell the CLI which run the exception closed, and how (it prints one line)."""
    try:
        exc.losslab_run_id, exc.losslab_run_status = run.info.run_id, status
    except AttributeError:  # exceptions with __slots__
        pass


# --- what a run records ----------------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def run_params(config: Config) -> dict[str, typing.Any]:
    """A run's params: every config field but `loss_args`, and the chosen loss's arguments
    (given ones over the entry's defaults) as `loss.<arg>`; None as "none", a tuple as the
    command line writes it ("0.1,0.5,0.9", not "(0.1, 0.5, 0.9)")."""
    values = {k: v for k, v in config.to_dict().items() if k != "loss_args"}
    values.update({f"loss.{k}": v for k, v in config.resolved_loss_args().items()})
    return {k: "none" if v is None else ",".join(map(str, v)) if isinstance(v, (tuple, list))
            else v for k, v in values.items()}


def run_tags(config: Config) -> dict[str, str]:
    """Our tags, all under `losslab.`, set when the run starts. MLflow sets its own
    `mlflow.source.git.commit`; `losslab.git_dirty` ignores files the project writes itself
    (the store, its lock, checkpoints: they are git-ignored)."""
    import tensorflow as tf  # noqa: PLC0415 (heavy; only its version is needed)

    dirty = _git("status", "--porcelain")
    return {
        "losslab.task": config.task,
        "losslab.dataset": config.dataset,
        "losslab.loss": config.loss,
        "losslab.loss_class": config.spec.import_path,
        "losslab.git_dirty": "unknown" if dirty is None else str(bool(dirty)).lower(),
        "losslab.version.tensorflow": tf.__version__,
        "losslab.version.keras": keras.__version__,
        "losslab.version.mlflow": mlflow.__version__,
        "losslab.version.python": sys.version.split()[0],
        "losslab.keras_backend": keras.backend.backend(),
    }


def log_config(config: Config) -> None:
    """Params (see `run_params`) and the resolved config as `config.json`."""
    mlflow.log_params(run_params(config))
    mlflow.log_text(config.to_json(), "config.json")


MAX_TAG = 500  # MLflow's limit on a dataset input tag's value


def log_dataset(splits, contexts: tuple[str, ...] = ("train", "val", "test")) -> None:
    """Dataset lineage: one `log_input` per split in `contexts` with its size and class
    counts (a tuning trial leaves "test" out: it never reads the test split)."""
    for context in contexts:
        x, y = getattr(splits, f"x_{context}"), getattr(splits, f"y_{context}")
        classes, counts = np.unique(y, return_counts=True)
        with warnings.catch_warnings():
            # A local path matches two equivalent MLflow source types; it picks one and warns.
            warnings.simplefilter("ignore", UserWarning)
            # Small in-RAM splits are hashed whole; a streamed split by its labels alone
            # (reading 120k images only to hash them would cost an epoch of decoding).
            features = x.array if isinstance(x, ArrayImages) else (
                x if isinstance(x, np.ndarray) else y)
            dataset = mlflow.data.from_numpy(
                features, targets=y, name=f"{splits.name}:{context}",
                source=_source(splits.name)
            )
        counts_text = json.dumps({int(c): int(n) for c, n in zip(classes, counts, strict=True)})
        if len(counts_text) > MAX_TAG:  # CUB's 100 classes, SOP's 11k: a summary fits a tag
            counts_text = (f"{len(classes)} classes, {int(counts.min())} to "
                           f"{int(counts.max())} images each (median {np.median(counts):g})")
        tags = {"examples": str(len(y)), "class_counts": counts_text}
        _retry(lambda dataset=dataset, context=context, tags=tags:
               mlflow.log_input(dataset, context=context, tags=tags))


def _source(name: str) -> str:
    """Where the data came from: a local IDX folder, or the dataset's public catalogue page."""
    for prefix in ("idx:", "folder:", "list:"):
        if name.startswith(prefix):
            return str(Path(name[len(prefix):].split(",")[0]).resolve())
    if ":" in name:  # a user's module:function
        return name
    if name == "digits":
        return "https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset"
    return f"https://www.tensorflow.org/datasets/catalog/{name}"


def log_metrics(values: dict[str, float], step: int | None = None,
                model_id: str | None = None, *, beat: bool = False) -> None:
    """One round trip for a whole epoch's metrics; retried on a busy SQLite store. With
    `model_id` the metrics are linked to that LoggedModel (its page shows them); `beat`
    renews the run's heartbeat tag in the same round trip."""
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, step or 0, model_id=model_id) for k, v in values.items()]
    tags: list[RunTag] = [heartbeat_tag()] if beat else []
    run_id = mlflow.active_run().info.run_id
    _retry(lambda: mlflow.MlflowClient().log_batch(run_id, metrics=metrics, tags=tags))


def log_figure(figure, path: str) -> None:
    """Log a `matplotlib.figure.Figure` (from `training.plots`) as the PNG at ``path``.

    Those figures are not registered with pyplot, so there is nothing to close: the figure
    is freed with its last reference."""
    mlflow.log_figure(figure, path)


def log_file(local_path: str | Path, artifact_dir: str | None = None) -> None:
    mlflow.log_artifact(str(local_path), artifact_dir)


def log_arrays(arrays: dict[str, np.ndarray], path: str) -> None:
    """Raw values (e.g. plot data) as one .npz artifact so figures can be redrawn."""
    directory, name = os.path.split(path)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / name
        np.savez_compressed(target, **arrays)
        mlflow.log_artifact(str(target), directory or None)


@contextlib.contextmanager
def _input_example_folder_created():
    """Work around mlflow/mlflow#16183 (open in MLflow 3.17): `mlflow.keras.log_model` with
    an `input_example` writes input_example.json before it creates the model folder
    (FileNotFoundError). For the duration of one call, the example writer creates the folder
    first; everything else is `log_model`'s own code."""
    import mlflow.keras.save as keras_save  # noqa: PLC0415 (the module holding the bug)

    original = keras_save._save_example

    def save_example(mlflow_model, example, path, *args, **kwargs):
        os.makedirs(path, exist_ok=True)
        return original(mlflow_model, example, path, *args, **kwargs)

    keras_save._save_example = save_example
    try:
        yield
    finally:
        keras_save._save_example = original


@contextlib.contextmanager
def _serving_check_calls_the_model():
    """MLflow checks the input example by loading the model back and calling Keras `predict`,
    which builds a new tf.function per model, every one with the same code object. TensorFlow's
    retracing detector keys on that code object, so from the 5th model of one process (the 5th
    run of a compare) it warned "triggered tf.function retracing". For the duration of one
    `log_model`, MLflow's Keras wrapper calls the model eagerly instead (same outputs)."""
    import mlflow.keras.load as keras_load  # noqa: PLC0415 (the wrapper MLflow predicts with)

    original = keras_load.KerasModelWrapper.get_model_call_method

    def call_method(self):
        if self.save_exported_model:
            return original(self)
        return lambda data: self.model(data, training=False)

    keras_load.KerasModelWrapper.get_model_call_method = call_method
    try:
        yield
    finally:
        keras_load.KerasModelWrapper.get_model_call_method = original


def log_keras_model(model, example: np.ndarray, outputs: np.ndarray, name: str = "model"):
    """`model` as an MLflow 3 LoggedModel named `name` (signature + input example) → its
    `ModelInfo`. Requirements are pinned explicitly: MLflow would otherwise re-import the
    model in a subprocess to infer them (slow). The model needs keras and its backend only."""
    import tensorflow as tf  # noqa: PLC0415 (only its version)
    from mlflow.models import infer_signature  # noqa: PLC0415 (pulls in MLflow's model stack)

    signature = infer_signature(example, outputs)
    requirements = [f"keras=={keras.__version__}", f"tensorflow=={tf.__version__}"]
    # MLflow validates the example by predicting it: without Keras's progress bar.
    interactive = keras.utils.is_interactive_logging_enabled()
    keras.utils.disable_interactive_logging()
    try:
        with _input_example_folder_created(), _serving_check_calls_the_model():
            return mlflow.keras.log_model(model, name=name, signature=signature,
                                          input_example=example, pip_requirements=requirements)
    finally:
        if interactive:
            keras.utils.enable_interactive_logging()


def run_description(config: Config, run_id: str, test: dict[str, float]) -> str:
    """The run's description (`mlflow.note.content`): loss, data, headline test metrics and
    how to resume or extend it, in one paragraph."""
    args = ", ".join(f"{k}={v}" for k, v in config.resolved_loss_args().items()) or "defaults"
    brief = metric_catalog.task(config.task).brief  # the catalogue's metrics a description names
    shown = ", ".join(f"{k} {test[k]:.4f}" for k in brief if k in test) or "no test metrics"
    long_tail = f", long tail IR {config.imbalance:g}" if config.imbalance > 1 else ""
    return (f"**{config.loss}** ({args}) on **{config.dataset}** ({config.task}{long_tail}), "
            f"{config.epochs} epochs, seed {config.seed}. Test: {shown}. Continue or extend "
            f"it with `make train RESUME={run_id} EPOCHS={config.epochs + 10}`; its loss "
            f"landscape with `make landscape RUN={run_id}`.")


# MLflow 3.17's UI opens in its GenAI view (traces) whatever `mlflow.experimentKind` says: the
# choice lives in the browser's localStorage, default GenAI (mlflow/mlflow#24498). Its
# WorkflowTypeProvider reads this URL parameter first, so a link with it opens the training view.
TRAINING_VIEW = "?workflowType=machine_learning"


def run_url(run=None, *, experiment_id: str | None = None) -> str:
    """Where the run's page (or, given only `experiment_id`, the experiment's) is, in the
    training view: on the tracking server, or on `make ui` for a local store."""
    uri = without_credentials(tracking_uri())
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    suffix = "" if uri.startswith(("http://", "https://")) else "   (start it with: make ui)"
    page = (f"experiments/{run.info.experiment_id}/runs/{run.info.run_id}" if run is not None
            else f"experiments/{experiment_id}/runs")
    return f"{base}/#/{page}{TRAINING_VIEW}{suffix}"


def _retry(fn, attempts: int = 8):
    """SQLite allows one writer: concurrent runs can see 'database is locked'; back off."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 (only lock errors are retried)
            # "UNIQUE constraint failed": two processes logging the same new dataset input at
            # once; on the retry the input exists and is reused.
            message = str(exc).lower()
            if not ("locked" in message or "unique constraint" in message) or (
                attempt == attempts - 1
            ):
                raise
            time.sleep(0.2 * 2**attempt)
    return None
