"""Turn any supported `y_true` layout into integer class labels of shape (B,)."""

import keras
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


def _is_integer(dtype):
    return "int" in keras.backend.standardize_dtype(dtype)
