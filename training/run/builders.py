"""Config → the objects a run trains with: loss, model, optimiser, input pipeline.

The loss and the head it needs come from the loss's registry entry (`losses/catalog.py`), so
adding a loss adds nothing here; the model comes from the model registry
(`training/run/backbone.py`), the optimiser from `training/run/optim.py`.
"""

from __future__ import annotations

import keras
import numpy as np

import losses
from training.config import Config
from training.data import (
    Splits,
    classification_dataset,
    classification_steps_per_epoch,
    load_splits,
    pk_dataset,
    pk_steps_per_epoch,
    prepare_splits,
)
from training.data.regression import regression_dataset
from training.data.samplers import epoch_index_function
from training.run import backbone, optim
from training.run.checkpoint import run_folder

# --- data --------------------------------------------------------------------------------


def build_splits(config: Config) -> Splits:
    """The run's train/val/test splits: a pure function of the config (deterministic in seed).

    The labels are split first; then every image is read once (the cache pass, which also
    finds unreadable files) with the model's view: `image_size` and the tf.data augmentation.
    Both happen before any run exists, so bad data is exit 2 with nothing left RUNNING."""
    splits = load_splits(
        config.dataset,
        config.task,
        seed=config.seed,
        val_fraction=config.val_fraction,
        imbalance=config.imbalance,
        data_dir=config.data_dir,
        data_root=config.data_root,
        image_size=config.image_size,
        target=config.target,
        weight=config.weight,
        outliers=config.outliers,
        drop_nan=config.drop_nan,
    )
    return prepare_splits(
        splits,
        policy=config.pipeline_augment(),
        image_size=config.image_size,
        cache=config.cache,
        cache_budget=config.cache_budget,
        cache_folder=run_folder(config.checkpoint_dir, "cache"),  # shared by all runs
        skip_bad_images=config.skip_bad_images,
    )


# --- losses ------------------------------------------------------------------------------


def build_loss(config: Config, y_train: np.ndarray, num_classes: int) -> keras.losses.Loss:
    """The chosen loss from its registry entry. A loss that needs the training split (class
    counts, priors) is built from the *training* labels only, never val or test, as a user
    would at train time."""
    return config.spec.build(config.loss_args, labels=y_train, num_classes=num_classes)


def drw_schedule(config: Config, y_train: np.ndarray, num_classes: int):
    """Deferred re-weighting (Cao et al. 2019) for a loss whose entry takes `drw`: from the
    0-based epoch ⌊0.8·epochs⌋ (the 1-based epoch ⌊0.8·epochs⌋ + 1) on, every sample is
    weighted by its class's Cui et al. weight (β = 0.9999, normalised as
    `losses.weights_from_labels`). → (start epoch, float32 (C,) weights), or None."""
    if not config.resolved_loss_args().get("drw", False):
        return None
    counts = np.bincount(y_train, minlength=num_classes)
    weights = np.asarray(losses.drw_weights(counts, beta=DRW_BETA), np.float32)
    return int(np.floor(0.8 * config.epochs)), weights


DRW_BETA = 0.9999  # Cao et al.'s re-weighting β


def statistics_metrics(loss) -> list:
    """Mining statistics of a metric loss as Keras metrics (batch means over the epoch)."""
    if not hasattr(loss, "statistics"):
        return []

    def metric(key):
        def fn(y_true, y_pred):
            return loss.statistics(y_true, y_pred)[key]

        fn.__name__ = key
        return fn

    return [metric(k) for k in ("active_fraction", "mean_pos_distance", "mean_neg_distance")]


# --- model -------------------------------------------------------------------------------


def build_model(config: Config, input_shape: tuple[int, ...], num_classes: int,
                splits: Splits | None = None) -> keras.Model:
    """The training model for the loss's input (its entry's `output`) on the backbone
    `config.model`: a classifier with a dense or cosine head, an embedding net, an
    embedding net with class proxies, or a regression head (which reads the training
    feature and target statistics of `splits`). Bad model settings raise ConfigError
    (exit 2)."""
    return backbone.build_model(config, input_shape, num_classes, splits)


# --- optimiser ---------------------------------------------------------------------------


def build_optimizer(config: Config, steps_per_epoch: int,
                    model: keras.Model | None = None) -> keras.optimizers.Optimizer:
    """The run's optimiser: per-variable rates, weight decay, warm-up (`training/run/optim.py`;
    `model` is needed when `head_lr_mult` != 1, for a coupled decay or for a warm-up)."""
    return optim.build_optimizer(config, steps_per_epoch, model)


# --- input pipeline ----------------------------------------------------------------------


def build_train_data(config: Config, x: np.ndarray, y: np.ndarray, initial_epoch: int = 0,
                     reweight=None, weights=None):
    """→ (infinite tf.data.Dataset, steps_per_epoch); fit with `steps_per_epoch=steps`.

    Metric losses get P×K batches (every anchor has positives), classification a fresh
    permutation per epoch; both are pure functions of (seed, epoch), so a resumed run replays
    the uninterrupted one (`training.data.pipeline`). `reweight`: see `drw_schedule`.
    Regression: float targets, and `weights` (N,) as sample weights (`training.data.regression`).
    """
    if config.task == "regression":
        dataset = regression_dataset(x, y, weights, config.batch_size, seed=config.seed,
                                     initial_epoch=initial_epoch)
        return dataset, classification_steps_per_epoch(y, config.batch_size)
    if config.task == "retrieval":
        p, k = config.classes_per_batch, config.samples_per_class
        dataset = pk_dataset(x, y, p=p, k=k, seed=config.seed, initial_epoch=initial_epoch)
        return dataset, pk_steps_per_epoch(y, p, k)
    dataset = classification_dataset(
        x, y, config.batch_size, seed=config.seed, initial_epoch=initial_epoch,
        reweight=reweight,
        epoch_indices=epoch_index_function(config.sampler, y, config.seed, config.epochs),
    )
    return dataset, classification_steps_per_epoch(y, config.batch_size)
