"""Gaussian negative log-likelihood with a learned variance, and its β-NLL weighting."""

import math

import keras
from keras import ops

from ._regression import check_width, checked, target_column

# log σ² is capped here: σ² <= e^60 ≈ 1e26 keeps the β weight (σ²)^β <= 1e26 and the loss
# finite in float32 for any finite head output (no target has a standard deviation of 1e13).
MAX_LOG_VARIANCE = 60.0


def gaussian_nll_loss(y_true, y_pred, beta=0.5, min_variance=1e-6):
    """Per-sample ½ (log σ² + (y − μ)²/σ²) · stop_gradient((σ²)^β), from a (B, 2) head of
    μ and s = log σ² (the constant ½ log 2π is left out, as in PyTorch's GaussianNLLLoss).

    The log-variance is clipped to [log min_variance, MAX_LOG_VARIANCE] in value only:
    log σ² = stop_gradient(clip(s)) + s − stop_gradient(s), so the gradient with respect to s
    is that of the clipped loss and never 0. (A plain clip would give heads below the floor a
    zero gradient forever; PyTorch clamps its variance the same straight-through way.) With
    (y − μ)²/σ² written as (y − μ)² · exp(−log σ²), nothing overflows: at s = −1e4 the loss is
    that of σ² = min_variance, at s = 1e4 that of σ² = e^60.

    Args:
        y_true: targets (B,) or (B, 1).
        y_pred: (B, 2): column 0 the mean μ, column 1 the log-variance s (any real number).
        beta: β in [0, 1]; 0 is the plain Gaussian NLL, 1 gives μ the gradient of ½·MSE.
        min_variance: the floor of σ², > 0.

    Returns:
        (B,) float32 losses.
    """
    y = target_column(y_true)[:, 0]
    y_pred = ops.cast(y_pred, "float32")
    mean, raw = y_pred[:, 0], y_pred[:, 1]
    bounded = ops.clip(raw, math.log(min_variance), MAX_LOG_VARIANCE)
    log_var = ops.stop_gradient(bounded) + (raw - ops.stop_gradient(raw))
    nll = 0.5 * (log_var + ops.square(y - mean) * ops.exp(-log_var))
    if beta:
        nll = nll * ops.stop_gradient(ops.exp(float(beta) * bounded))
    return nll


@keras.saving.register_keras_serializable(package="losses")
class GaussianNLLLoss(keras.losses.Loss):
    """Gaussian NLL with a predicted variance, β-NLL weighted (Seitzer et al.).

    Formula:

    ```
    loss_i = stop_gradient(σ_i^{2β}) · ½ (log σ_i² + (y_i − μ_i)² / σ_i²)
    μ_i = y_pred[i, 0],   σ_i² = max(exp(y_pred[i, 1]), min_variance)
    ```

    The plain NLL (β = 0) lets the model explain hard points away with a large σ²: their
    mean gets the gradient (μ − y)/σ², which vanishes. Weighting each term by σ^{2β} (under
    stop-gradient, so it changes the gradient's weights, not its direction) restores it:
    β = 1 gives μ exactly the gradient of ½·MSE. β = 0.5 is the paper's recommendation.

    Args:
        beta: β in [0, 1] (default 0.5); 0 is the plain Gaussian NLL.
        min_variance: floor of σ², > 0 (default 1e-6, in squared target units).
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself is
            always float32).

    Example:

    >>> import numpy as np
    >>> loss = GaussianNLLLoss(beta=0.0)
    >>> round(float(loss(np.array([1.0]), np.array([[0.0, 0.0]]))), 4)  # ½ (0 + 1² / 1)
    0.5

    Reference: Seitzer et al., "On the Pitfalls of Heteroscedastic Uncertainty Estimation
    with Probabilistic Neural Networks", ICLR 2022, arXiv:2203.09168.
    """

    def __init__(self, beta=0.5, min_variance=1e-6, reduction="sum_over_batch_size",
                 name="gaussian_nll_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.beta, self.min_variance = checked("gaussian_nll", beta=beta,
                                               min_variance=min_variance)

    def call(self, y_true, y_pred):
        check_width("gaussian_nll", y_pred, 2)
        return gaussian_nll_loss(y_true, y_pred, self.beta, self.min_variance)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "min_variance": self.min_variance}
