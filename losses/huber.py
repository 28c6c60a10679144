"""Huber loss: quadratic within δ of the target, linear beyond (L2 near, L1 far)."""

import keras
from keras import ops

from ._regression import checked, columns


def huber_loss(y_true, y_pred, delta=1.0):
    """Per-sample mean over the last axis of ½e² for |e| ≤ δ, δ|e| − ½δ² beyond, e = ŷ − y.

    Both pieces are evaluated and one is kept (`where`): three elementwise ops more than MSE,
    no branch, a gradient clip(e, −δ, δ) that is continuous at |e| = δ.

    Args:
        y_true: targets (B,) or (B, K).
        y_pred: predictions (B,) or (B, K); a (B,) side is read as one (B, 1) column.
        delta: δ > 0, in the units of the target.

    Returns:
        (B,) float32 losses.
    """
    y, y_hat = columns(y_true, y_pred)
    error = y_hat - y
    size = ops.abs(error)
    delta = float(delta)
    near = 0.5 * ops.square(error)
    far = delta * size - 0.5 * delta * delta
    return ops.mean(ops.where(size <= delta, near, far), axis=-1)


@keras.saving.register_keras_serializable(package="losses")
class HuberLoss(keras.losses.Loss):
    """Huber loss, the same value as `keras.losses.Huber(delta)`.

    Formula:

    ```
    loss_i = mean_k h(ŷ_ik − y_ik),   h(e) = ½ e²  if |e| ≤ δ,  δ (|e| − ½ δ)  otherwise
    ```

    Errors within δ are fitted as by least squares; larger ones pull with the bounded force δ,
    as under L1. δ is in target units: δ → ∞ is ½·MSE, δ → 0 is δ·MAE.

    Args:
        delta: δ > 0 (default 1.0, Keras's).
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself is
            always float32).

    Example:

    >>> import numpy as np
    >>> round(float(HuberLoss(1.0)(np.array([1.0, 2.0]), np.array([[1.5], [0.0]]))), 4)
    0.8125

    Reference: Huber, "Robust Estimation of a Location Parameter", Ann. Math. Statist. 1964.
    """

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        (self.delta,) = checked("huber", delta=delta)

    def call(self, y_true, y_pred):
        return huber_loss(y_true, y_pred, self.delta)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}
