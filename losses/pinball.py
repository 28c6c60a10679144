"""Pinball (quantile) loss: one output column per quantile τ, optionally kept from crossing."""

import keras
from keras import ops

from ._regression import check_width, checked, target_column


def pinball_loss(y_true, y_pred, quantiles=(0.1, 0.5, 0.9), crossing=0.0):
    """Per-sample mean over the Q quantiles of ρ_τ(y − ŷ_τ), plus `crossing` times the
    total amount by which neighbouring quantile predictions cross.

    ρ_τ(u) = max(τu, (τ − 1)u) is computed as u · (τ − ½ + ½ sign u). Its gradient with
    respect to ŷ is −τ where ŷ < y and 1 − τ where ŷ > y; at the kink ŷ = y it is ½ − τ, the
    middle of the subdifferential [−τ, 1 − τ] (0 for the median, as MAE's sign(0) = 0, so
    τ = ½ is exactly ½·MAE, gradient included). sign has a zero derivative on every backend,
    so this holds on TensorFlow, JAX and PyTorch alike, where `ops.maximum` splits a tie
    differently per backend.

    Cost: four elementwise ops over (B, Q) and a mean, as `ops.maximum(τu, (τ − 1)u)` (two
    products and a max). The crossing term adds a (B, Q − 1) difference, relu and sum; it is
    skipped at crossing = 0 (benchmarks/regression_losses.py measures both).

    Args:
        y_true: targets (B,) or (B, 1).
        y_pred: (B, Q) predictions, column j for quantiles[j].
        quantiles: Q increasing levels in (0, 1).
        crossing: weight λ >= 0 of Σ_j max(0, ŷ_j − ŷ_{j+1}).

    Returns:
        (B,) float32 losses.
    """
    y = target_column(y_true)
    y_hat = ops.cast(y_pred, "float32")
    u = y - y_hat  # (B, Q)
    half_off = ops.convert_to_tensor([float(q) - 0.5 for q in quantiles], "float32")
    loss = ops.mean(u * (half_off + 0.5 * ops.sign(u)), axis=-1)
    if crossing and len(quantiles) > 1:
        cross = ops.relu(y_hat[:, :-1] - y_hat[:, 1:])
        loss = loss + float(crossing) * ops.sum(cross, axis=-1)
    return loss


@keras.saving.register_keras_serializable(package="losses")
class PinballLoss(keras.losses.Loss):
    """Pinball (quantile) loss for Q quantiles at once; the head has one column per quantile.

    Formula:

    ```
    loss_i = mean_j ρ_{τ_j}(y_i − ŷ_ij) + λ Σ_{j<Q} max(0, ŷ_ij − ŷ_i,j+1)
    ρ_τ(u) = max(τ u, (τ − 1) u)
    ```

    The minimiser of E ρ_τ(y − ŷ) is the τ quantile of y given x, so [ŷ_0.1, ŷ_0.9] is an 80 %
    prediction interval. Separate columns can cross (ŷ_0.9 < ŷ_0.1 on some x); λ > 0 charges
    each unit of crossing λ (the penalty is 0 whenever the columns are in order, so it does
    not bias ordered predictions). Gradient at ŷ = y: ½ − τ (see `pinball_loss`).

    Args:
        quantiles: increasing levels in (0, 1), a tuple or list (default (0.1, 0.5, 0.9)).
        crossing: λ >= 0, the weight of the non-crossing penalty (default 0: off).
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself is
            always float32).

    Example:

    >>> import numpy as np
    >>> loss = PinballLoss(quantiles=(0.1, 0.9))
    >>> round(float(loss(np.array([1.0]), np.array([[0.0, 0.0]]))), 4)  # (0.1 + 0.9) / 2
    0.5

    Reference: Koenker & Bassett, "Regression Quantiles", Econometrica 1978.
    """

    def __init__(self, quantiles=(0.1, 0.5, 0.9), crossing=0.0,
                 reduction="sum_over_batch_size", name="pinball_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.quantiles, self.crossing = checked("pinball", quantiles=quantiles,
                                                crossing=crossing)

    def call(self, y_true, y_pred):
        check_width("pinball", y_pred, len(self.quantiles))
        return pinball_loss(y_true, y_pred, self.quantiles, self.crossing)

    def get_config(self):
        return {**super().get_config(), "quantiles": self.quantiles, "crossing": self.crossing}
