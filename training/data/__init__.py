"""Datasets for losslab: sources, splits and tf.data pipelines.

    splits = load_splits("digits", "classification", seed=0)     # labels; images stay lazy
    splits = prepare_splits(splits, policy="none", image_size=None, cache="auto",
                            cache_budget=0.25, cache_folder=None, skip_bad_images=False)
    train = classification_dataset(splits.x_train, splits.y_train, 64, seed=0)  # infinite

Every bad-data case raises ``DataError`` (a ``ValueError``) with a message that names the
bad value and the valid choices.

The names below are imported on first use: ``training.data.catalog`` (the source registry as
plain data) is read by config validation and ``--help``, which must not wait for TensorFlow.
"""

from __future__ import annotations

import importlib

from training.errors import DataError

_LAZY = {
    "classification_dataset": "pipeline",
    "classification_steps_per_epoch": "pipeline",
    "pk_batch_indices": "pipeline",
    "pk_dataset": "pipeline",
    "pk_steps_per_epoch": "pipeline",
    "regression_dataset": "regression",
    "available_datasets": "sources",
    "Splits": "splits",
    "load_splits": "splits",
    "long_tail_counts": "splits",
    "prepare_splits": "splits",
}

__all__ = ["DataError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"training.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'training.data' has no attribute {name!r}")
