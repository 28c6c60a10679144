"""Config → the objects a run trains with: loss, model, optimiser, input pipeline.

Each choice is a registry lookup keyed by a config value, so adding a loss or an optimiser is
one entry here, not a new branch in the trainer.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

import losses
from models import embedding_net, small_cnn
from training.config import Config
from training.data import Splits, load_splits, pk_dataset, pk_steps_per_epoch

# --- data --------------------------------------------------------------------------------


def build_splits(config: Config) -> Splits:
    """The run's train/val/test splits: a pure function of the config (deterministic in seed)."""
    return load_splits(
        config.dataset,
        config.task,
        seed=config.seed,
        val_fraction=config.val_fraction,
        imbalance=config.imbalance,
        data_dir=config.data_dir,
    )


# --- losses ------------------------------------------------------------------------------
# Each builder gets the config and the *training* labels: balanced CE derives its class
# weights from the training split only (never val/test), as a user would at train time.
LOSS_BUILDERS = {
    "ce": lambda c, y, n: losses.get("ce"),
    "balanced_ce": lambda c, y, n: losses.BalancedCrossentropy.from_labels(
        y, num_classes=n, beta=c.beta
    ),
    "focal": lambda c, y, n: losses.FocalLoss(gamma=c.gamma, alpha=c.alpha),
    "triplet": lambda c, y, n: losses.TripletLoss(
        margin=c.resolved_margin(), mining=c.mining, distance=c.distance, soft=c.soft
    ),
    "contrastive": lambda c, y, n: losses.ContrastiveLoss(
        margin=c.resolved_margin(), distance=c.distance
    ),
}


def build_loss(config: Config, y_train: np.ndarray, num_classes: int) -> keras.losses.Loss:
    return LOSS_BUILDERS[config.loss](config, y_train, num_classes)


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


def build_model(config: Config, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Classifier or embedding net for the config's task; augmentation inside the model
    (active in `fit` only), seeded with the run's seed."""
    augment, seed = config.resolved_augment(), config.seed
    if config.task == "classification":
        return small_cnn(input_shape, num_classes, l2=config.l2, augment=augment, seed=seed)
    return embedding_net(
        input_shape, dim=config.embedding_dim, l2=config.l2, augment=augment, seed=seed
    )


# --- optimiser ---------------------------------------------------------------------------

OPTIMIZERS = {
    "adam": lambda lr: keras.optimizers.Adam(lr),
    "adamw": lambda lr: keras.optimizers.AdamW(lr, weight_decay=1e-4),
    "sgd": lambda lr: keras.optimizers.SGD(lr, momentum=0.9, nesterov=True),
}


def build_optimizer(config: Config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr = config.learning_rate
    if config.lr_schedule == "cosine":
        # Decays to 1% of the peak over the whole run; the schedule depends on the optimiser's
        # iteration count, which a checkpoint restores, so a resumed run continues the curve.
        lr = keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=config.epochs * steps_per_epoch, alpha=0.01
        )
    return OPTIMIZERS[config.optimizer](lr)


# --- input pipeline ----------------------------------------------------------------------


def build_train_data(config: Config, x: np.ndarray, y: np.ndarray, initial_epoch: int = 0):
    """→ (infinite tf.data.Dataset, steps_per_epoch); fit with `steps_per_epoch=steps`.

    Epoch e's batches are a pure function of (seed, e), never of how many epochs this process
    has already run: a run resumed at epoch E with `initial_epoch=E` sees exactly the batches
    of an uninterrupted run (the sampler "state" is just (seed, epoch)). Metric losses get P×K
    batches (every anchor has positives); classification gets a fresh permutation per epoch,
    `default_rng([seed, e]).permutation(N)`, cut into ceil(N / batch_size) batches (the last
    one smaller).

    Args:
        x: float32 (N, H, W, C) in [0, 1]; y: int32 (N,).
        initial_epoch: first epoch (0-based) the dataset produces.

    Returns:
        Dataset of (float32 (B, H, W, C), int32 (B,)) and the number of batches per epoch.
    """
    if config.task == "retrieval":
        p, k = config.classes_per_batch, config.samples_per_class
        dataset = pk_dataset(x, y, p=p, k=k, seed=config.seed, initial_epoch=initial_epoch)
        return dataset, pk_steps_per_epoch(y, p, k)
    n, size = len(y), config.batch_size
    # Images stay one constant in memory (MNIST train: 188 MB float32); NumPy draws only the
    # indices (microseconds per epoch) and tf.gather builds each batch.
    images = tf.constant(np.asarray(x, np.float32))
    labels = tf.constant(np.asarray(y, np.int32))

    def index_batches():
        epoch = initial_epoch
        while True:
            order = np.random.default_rng([config.seed, epoch]).permutation(n)
            for start in range(0, n, size):
                yield order[start : start + size]
            epoch += 1

    spec = tf.TensorSpec((None,), tf.int64)  # unknown batch size: one trace for the short batch
    dataset = tf.data.Dataset.from_generator(index_batches, output_signature=spec)
    dataset = dataset.map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))
    return dataset.prefetch(tf.data.AUTOTUNE), int(np.ceil(n / size))
