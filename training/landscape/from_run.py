"""The landscape of a tracked run: rebuild its model, data subset and loss, compute, log.

A run's record is enough (the trainer logs it): ``config.json`` (the resolved Config) and the
Keras weight files ``weights/initial.weights.h5`` and ``weights/final.weights.h5``. The model
and the loss are rebuilt from the config with the trainer's own builders (the loss from the
training labels, as in training: balanced CE's class weights), so nothing pickled is loaded
and a run whose model artifact failed to log still works; a code change that alters the
architecture fails loudly in ``load_weights``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import keras
import mlflow
import numpy as np

from training.config import Config
from training.landscape.landscape import Landscape, compute_landscape
from training.landscape.tracking import log_landscape
from training.reopen import start_existing_run
from training.run.builders import build_loss, build_model, build_splits


def landscape_subset(
    x: np.ndarray, y: np.ndarray, examples: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``examples`` items of a permutation seeded by ``seed`` (all when fewer).

    The same seed gives the same subset for every loss compared on one split.
    """
    if examples < 1:
        raise ValueError(f"examples must be >= 1, got {examples}")
    order = np.random.default_rng(seed).permutation(len(y))[:examples]
    return x[order], y[order]


def landscape_for_config(
    config,
    model: keras.Model,
    loss_fn,
    initial_weights: list[np.ndarray],
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    points: int | None = None,
    examples: int | None = None,
    radius: float | None = None,
    seed: int = 0,
) -> Landscape:
    """``compute_landscape`` with the run's settings (``None`` = the config's landscape field).

    Metric-learning runs (``config.task == "retrieval"``) are evaluated as one batch: a
    triplet or contrastive loss needs positive pairs inside its batch.

    Args:
        config: a ``training.config.Config``.
        model: the model at its final weights (restored on return).
        loss_fn: the run's loss object.
        initial_weights: the weights before training.
        x_train, y_train: the run's training split; a seeded subset is used.
        points, examples, radius: grid points per axis, subset size, grid half-width.
        seed: seed of the subset and of the two directions.
    """
    x, y = landscape_subset(
        x_train, y_train, config.landscape_examples if examples is None else examples, seed
    )
    return compute_landscape(
        model,
        loss_fn,
        initial_weights,
        x,
        y,
        points=config.landscape_points if points is None else points,
        radius=config.landscape_radius if radius is None else radius,
        seed=seed,
        single_batch=config.task == "retrieval",
    )


def _weights_from(model: keras.Model, path: str) -> list[np.ndarray]:
    model.load_weights(path)
    return model.get_weights()


def landscape_of_run(
    run_id: str,
    *,
    points: int | None = None,
    examples: int | None = None,
    radius: float | None = None,
    seed: int = 0,
) -> Landscape:
    """Compute the landscape of a finished run and log it into that run (see ``log_landscape``).

    Uses the current MLflow tracking URI. Returns the ``Landscape``.
    """

    with tempfile.TemporaryDirectory() as folder:
        local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="config.json",
                                                         dst_path=folder))
        config = Config.from_dict(json.loads(local.read_text()))
        weights = {
            name: mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=f"weights/{name}.weights.h5", dst_path=folder
            )
            for name in ("initial", "final")
        }
        splits = build_splits(config)
        model = build_model(config, splits.x_train.shape[1:], splits.num_classes, splits)
        initial = _weights_from(model, weights["initial"])
        _weights_from(model, weights["final"])
    loss_fn = build_loss(config, splits.y_train, splits.num_classes)
    landscape = landscape_for_config(config, model, loss_fn, initial, splits.x_train,
                                     splits.y_train, points=points, examples=examples,
                                     radius=radius, seed=seed)
    with start_existing_run(run_id):
        log_landscape(landscape, title=f"{config.loss} on {config.dataset} (seed {config.seed}), "
                                       f"run {run_id[:8]}")
    return landscape
