"""Mean squared error (L2): least squares, the founding essay's first loss."""

import keras
from keras import ops

from ._regression import columns


def mse_loss(y_true, y_pred):
    """Per-sample mean over the last axis of (ŷ − y)².

    Args:
        y_true: targets (B,) or (B, K).
        y_pred: predictions (B,) or (B, K); a (B,) side is read as one (B, 1) column.

    Returns:
        (B,) float32 losses.
    """
    y, y_hat = columns(y_true, y_pred)
    return ops.mean(ops.square(y_hat - y), axis=-1)


@keras.saving.register_keras_serializable(package="losses")
class MSELoss(keras.losses.Loss):
    """Mean squared error, the same value as `keras.losses.MeanSquaredError`.

    Formula:

    ```
    loss_i = mean_k (ŷ_ik − y_ik)²
    ```

    Its minimiser is the conditional mean, so one large error outweighs many small ones.
    Weighted least squares (Σ w_i (y_i − ŷ_i)², w_i = 1/σ_i² under known noise) is this loss
    with Keras's `sample_weight`. Unlike Keras's built-in, targets (B,) against a (B, 1) head
    give one loss per sample (Keras squeezes both to (B,) and averages over the batch inside
    `call`, so `reduction="none"` gives a scalar there).

    Args:
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself is
            always float32).

    Example:

    >>> import numpy as np
    >>> round(float(MSELoss()(np.array([1.0, 2.0]), np.array([[1.5], [0.0]]))), 4)
    2.125

    Reference: Legendre (1805), Gauss (1809): the method of least squares.
    """

    def __init__(self, reduction="sum_over_batch_size", name="mse_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return mse_loss(y_true, y_pred)
