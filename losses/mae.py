"""Mean absolute error (L1): the median is its minimiser, so outliers pull it less."""

import keras
from keras import ops

from ._regression import columns


def mae_loss(y_true, y_pred):
    """Per-sample mean over the last axis of |ŷ − y|.

    |e| is computed as e · sign(e), so the gradient at e = 0 is sign(0) = 0 on every backend
    (the derivative of `ops.abs` at 0 is 0 on TensorFlow and PyTorch but 1 on JAX). One more
    elementwise multiply than `ops.abs` (benchmarks/regression_losses.py).

    Args:
        y_true: targets (B,) or (B, K).
        y_pred: predictions (B,) or (B, K); a (B,) side is read as one (B, 1) column.

    Returns:
        (B,) float32 losses.
    """
    y, y_hat = columns(y_true, y_pred)
    error = y_hat - y
    return ops.mean(error * ops.sign(error), axis=-1)


@keras.saving.register_keras_serializable(package="losses")
class MAELoss(keras.losses.Loss):
    """Mean absolute error, the same value as `keras.losses.MeanAbsoluteError`.

    Formula:

    ```
    loss_i = mean_k |ŷ_ik − y_ik|
    ```

    Every error pulls with the same force (its gradient is ±1), so a few corrupted targets
    move the fit far less than under MSE. Subgradient 0 at ŷ = y on every backend.

    Args:
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself is
            always float32).

    Example:

    >>> import numpy as np
    >>> round(float(MAELoss()(np.array([1.0, 2.0]), np.array([[1.5], [0.0]]))), 4)
    1.25

    Reference: Boscovich (1757), Laplace (1789): least absolute deviations.
    """

    def __init__(self, reduction="sum_over_batch_size", name="mae_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return mae_loss(y_true, y_pred)
