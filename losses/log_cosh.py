"""Log-cosh loss: ½e² near the target, |e| − log 2 far from it, smooth everywhere."""

import math

import keras
from keras import ops

from ._regression import columns

LOG_2 = math.log(2.0)


def log_cosh_loss(y_true, y_pred):
    """Per-sample mean over the last axis of log(cosh(e)), e = ŷ − y.

    Computed as e + softplus(−2e) − log 2, which is log(cosh e) without overflow: cosh
    overflows float32 for |e| > 89, this form stays exact for any finite e, and its gradient
    is tanh(e).

    Args:
        y_true: targets (B,) or (B, K).
        y_pred: predictions (B,) or (B, K); a (B,) side is read as one (B, 1) column.

    Returns:
        (B,) float32 losses.
    """
    y, y_hat = columns(y_true, y_pred)
    error = y_hat - y
    return ops.mean(error + ops.softplus(-2.0 * error) - LOG_2, axis=-1)


@keras.saving.register_keras_serializable(package="losses")
class LogCoshLoss(keras.losses.Loss):
    """Log-cosh loss, the same value as `keras.losses.LogCosh`.

    Formula:

    ```
    loss_i = mean_k log cosh(ŷ_ik − y_ik) = mean_k [e + softplus(−2e) − log 2]
    ```

    Like Huber with δ = 1 but twice differentiable: ½e² for small errors, |e| − log 2 for
    large ones, gradient tanh(e). No argument: the scale of the bend is fixed at one target
    unit.

    Args:
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself is
            always float32).

    Example:

    >>> import numpy as np
    >>> round(float(LogCoshLoss()(np.array([0.0]), np.array([[1.0]]))), 4)  # log cosh 1
    0.4338

    Reference: the standard robust loss, e.g. Keras's `LogCosh`; Saleh & Saleh,
    "Statistical Properties of the log-cosh Loss Function", arXiv:2208.04564.
    """

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return log_cosh_loss(y_true, y_pred)
