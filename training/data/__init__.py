"""Datasets for losslab: sources, splits and tf.data pipelines.

    splits = load_splits("digits", "classification", seed=0)     # labels; images stay lazy
    splits = prepare_splits(splits, policy="none", image_size=None, cache="auto",
                            cache_budget=0.25, cache_folder=None, skip_bad_images=False)
    train = classification_dataset(splits.x_train, splits.y_train, 64, seed=0)  # infinite

Every bad-data case raises ``DataError`` (a ``ValueError``) with a message that names the
bad value and the valid choices.
"""

from training.data.pipeline import (
    classification_dataset,
    classification_steps_per_epoch,
    pk_batch_indices,
    pk_dataset,
    pk_steps_per_epoch,
)
from training.data.sources import available_datasets
from training.data.splits import Splits, load_splits, long_tail_counts, prepare_splits
from training.errors import DataError

__all__ = [
    "DataError",
    "Splits",
    "available_datasets",
    "classification_dataset",
    "classification_steps_per_epoch",
    "load_splits",
    "long_tail_counts",
    "pk_batch_indices",
    "pk_dataset",
    "pk_steps_per_epoch",
    "prepare_splits",
]
