"""Train / val / test splits and the training pipeline of a regression task.

Rows are split like classification's (test: the source's own, else a seeded
``TEST_FRACTION``; val: a seeded ``val_fraction`` of the rest) but without strata: targets
are floats. Then, in order:

1. ``outliers=FRACTION`` replaces nothing and touches only the training targets: a seeded
   share of them is shifted by std(y_train) × a standard Cauchy draw (heavy-tailed: the
   experiment where L1 or Huber beats L2). Val and test stay clean.
2. A table's rows are encoded with the training rows' categories (``tabular.encode``) into
   float32 (N, F) features, and ``feature_stats`` gives their training mean and variance for
   the model's Normalization layer. Image sources (``list:``, ``module:function`` with
   float targets) keep their lazy images.

The pipeline yields (features or images, float32 targets (B,)[, float32 weights (B,)]):
weights reach Keras as ``sample_weight``, so every regression loss and every metric is
weighted least squares when a ``weight=`` column is given.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from training.data.images import ArrayImages, as_images
from training.data.pipeline import _batches
from training.data.source import Source
from training.data.tabular import check_table, encode, feature_stats, fit_encoding
from training.errors import DataError

MIN_TRAIN_ROWS = 2
OUTLIER_STREAM = 1  # the outliers' generator is default_rng([seed, 1]), apart from the split's


def _row_split(n: int, fraction: float, rng: np.random.Generator):
    order = rng.permutation(n)
    held = math.ceil(fraction * n) if n else 0
    return np.sort(order[held:]), np.sort(order[:held])


def corrupt_targets(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(targets with round(fraction·N) of them shifted by std(y)·Cauchy, the rows shifted)."""
    if not 0 <= fraction < 1:
        raise DataError(f"outliers={fraction} is out of range; valid: 0 <= outliers < 1")
    rng = np.random.default_rng([seed, OUTLIER_STREAM])
    count = int(round(fraction * len(y)))
    rows = np.sort(rng.choice(len(y), size=count, replace=False))
    out = np.array(y, np.float64, copy=True)
    out[rows] += float(np.std(y)) * rng.standard_cauchy(count)
    return out, rows


def split_regression(src: Source, name: str, *, seed: int, val_fraction: float,
                     test_fraction: float, outliers: float = 0.0, drop_nan: bool = False):
    """→ dict of the Splits fields of a regression task (see `training.data.splits`)."""
    rng = np.random.default_rng(seed)
    table, dropped = (check_table(src.table, drop_nan) if src.table is not None
                      else (None, 0))
    n = len(table) if table is not None else len(src.y_train)
    if src.x_test is None:
        pool, test = _row_split(n, test_fraction, rng)
    else:
        pool, test = np.arange(n), None
    train, val = _row_split(len(pool), val_fraction, rng)
    train, val = pool[train], pool[val]
    if len(train) < MIN_TRAIN_ROWS or not len(val) or (test is not None and not len(test)):
        raise DataError(
            f"dataset {name!r} has {n} usable row(s): too small to split into train/val/test "
            f"(got {len(train)}/{len(val)}/{0 if test is None else len(test)}); it needs at "
            f"least {MIN_TRAIN_ROWS} training rows, 1 val and 1 test row")
    if table is not None:
        parts = {"train": table.take(train), "val": table.take(val), "test": table.take(test)}
        encoding = fit_encoding(parts["train"])
        if not encoding.names:
            raise DataError(f"{table.name} has no feature column besides the target "
                            f"{table.target!r}")
        x = {k: encode(t, encoding, k) for k, t in parts.items()}
        y = {k: t.y for k, t in parts.items()}
        w = {k: t.weights for k, t in parts.items()}
        fields = {f"x_{k}": ArrayImages(v) for k, v in x.items()}
        fields.update(feature_names=encoding.names,
                      feature_stats=feature_stats(x["train"], encoding.numeric_mask))
    else:
        y_all = np.asarray(src.y_train, np.float64)
        y = {"train": y_all[train], "val": y_all[val]}
        fields = {"x_train": src.x_train.take(train), "x_val": src.x_train.take(val)}
        if test is None:
            fields["x_test"], y["test"] = src.x_test, np.asarray(src.y_test, np.float64)
        else:
            fields["x_test"], y["test"] = src.x_train.take(test), y_all[test]
        w = dict.fromkeys(y)
    y["train"], corrupted = (corrupt_targets(y["train"], outliers, seed) if outliers
                             else (y["train"], np.zeros(0, np.int64)))
    for k in ("train", "val", "test"):
        fields[f"y_{k}"] = np.asarray(y[k], np.float32)
        fields[f"w_{k}"] = None if w[k] is None else np.asarray(w[k], np.float32)
    return {**fields, "dropped_rows": dropped, "outlier_rows": int(corrupted.size),
            "target_stats": target_stats(y["train"])}


def target_stats(y: np.ndarray) -> tuple[float, float]:
    """(median, 1.4826·MAD) of the training targets: the center and scale the head predicts
    in. Robust, so `outliers=` (a Cauchy shift of 10 % of the targets) barely moves them and
    L1 and L2 runs see the same scale; the MAD of a normal sample estimates its σ. Falls back
    to the std, then to 1, when the MAD is 0."""
    y = np.asarray(y, np.float64)
    center = float(np.median(y))
    scale = 1.4826 * float(np.median(np.abs(y - center)))
    if not scale > 0:
        scale = float(np.std(y))
    return center, scale if scale > 0 else 1.0


def regression_dataset(x, y, weights, batch_size: int, *, seed: int,
                       initial_epoch: int = 0) -> tf.data.Dataset:
    """Infinite shuffled batches: epoch e is `default_rng([seed, e]).permutation(N)` cut into
    ceil(N / batch_size) batches (as `classification_dataset`, so resume replays the same
    batches). Elements: (float32 (B, ...), float32 (B,)) or, with `weights`, (…, float32 (B,))
    sample weights."""
    if len(x) != len(y):
        raise DataError(f"x has {len(x)} rows but y has {len(y)} targets")
    n = len(y)
    targets = tf.constant(np.asarray(y, np.float32))
    order = lambda e: np.random.default_rng([seed, e]).permutation(n)  # noqa: E731
    ds = _batches(as_images(x), order, batch_size, seed, initial_epoch)
    if weights is None:
        ds = ds.map(lambda xb, i, e: (xb, tf.gather(targets, i)))
    else:
        table = tf.constant(np.asarray(weights, np.float32))
        ds = ds.map(lambda xb, i, e: (xb, tf.gather(targets, i), tf.gather(table, i)))
    return ds.prefetch(tf.data.AUTOTUNE)
