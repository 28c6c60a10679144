"""Class labels: any supported `y_true` layout → integer labels (B,), the true-class entries
of a (B, C) prediction, and the per-class counts of a training split."""

import keras
import numpy as np
from keras import ops


def to_labels(y_true, num_classes=None):
    """Integer labels (B,) int32 from labels (B,), (B, 1) or one-hot / soft targets (B, C).

    A rank-2 `y_true` whose last dimension is 1 is a column of labels; any other rank-2
    `y_true` is read as one-hot and reduced with argmax (ties, as in soft targets, go to the
    first class). `num_classes`, when given, disambiguates C = 1 and checks the one-hot width.
    Keras's `Loss.__call__` has already cast `y_true` to float32, so labels come back through
    a cast; float32 holds every integer label below 2**24 exactly.
    """
    y_true = ops.convert_to_tensor(y_true)
    rank = len(y_true.shape)
    if rank == 2 and y_true.shape[-1] == 1 and num_classes != 1:
        y_true = ops.squeeze(y_true, axis=-1)
    elif rank == 2:
        if num_classes is not None and y_true.shape[-1] not in (None, num_classes):
            raise ValueError(
                f"One-hot y_true has {y_true.shape[-1]} columns but y_pred has "
                f"{num_classes} classes."
            )
        y_true = ops.argmax(y_true, axis=-1)
    elif rank != 1:
        raise ValueError(
            f"Invalid y_true shape {tuple(y_true.shape)}: expected (B,), (B, 1) or one-hot (B, C)."
        )
    if not _is_integer(y_true.dtype):
        y_true = ops.round(y_true)
    return ops.cast(y_true, "int32")


def to_float32(x):
    """Cast to float32: losses compute in float32 even for float16/bfloat16 inputs."""
    return ops.cast(ops.convert_to_tensor(x), "float32")


def logits_and_labels(y_true, y_pred, from_logits=True):
    """(z, labels): `y_pred` as float32 (B, C) logits and `y_true` as (B,) int32 labels.

    Probabilities (`from_logits=False`) are clipped to [epsilon, 1] and logged: log p has
    the softmax p, so every softmax loss treats it as logits.
    """
    z = to_float32(y_pred)
    if not from_logits:
        z = ops.log(ops.clip(z, keras.config.epsilon(), 1.0))
    return z, to_labels(y_true, z.shape[-1])


def true_class(values, labels):
    """(B,) values[i, labels[i]] of (B, C) `values`: a flat gather of B entries (its gradient
    scatters B values), not a (B, C) one-hot product."""
    num_classes = ops.shape(values)[-1]
    rows = ops.arange(ops.shape(values)[0], dtype="int32")
    return ops.take(ops.reshape(values, (-1,)), rows * num_classes + labels)


def class_counts(labels, num_classes=None):
    """Training examples per class, n_c, from integer labels: a list of C ints, all > 0.

    What `from_labels` builds every per-class quantity from (weights, margins, priors).

    Raises ValueError for non-integer or negative labels, a label >= `num_classes`, or a
    class with no examples (its margin, prior or weight would be infinite).
    """
    labels = np.asarray(labels).reshape(-1)
    integral = np.issubdtype(labels.dtype, np.integer) or (
        np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0)
    )
    if labels.size == 0 or not integral:
        raise ValueError("Invalid labels: expected a non-empty array of integer class ids.")
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        raise ValueError(f"Invalid labels: found negative class id {labels.min()}.")
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    elif labels.max() >= num_classes:
        raise ValueError(
            f"Invalid num_classes={num_classes}: labels contain class id {labels.max()}."
        )
    counts = np.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0).tolist()
        raise ValueError(
            f"Classes {missing} have no examples: their margin, prior or weight would be "
            "infinite. Pass num_classes that matches the labels, or drop the empty classes."
        )
    return [int(n) for n in counts]


def _is_integer(dtype):
    return "int" in keras.backend.standardize_dtype(dtype)
