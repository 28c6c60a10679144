"""ArcFace (additive angular margin): softmax on scaled cosines, true angle plus a margin."""

import math

import keras
from keras import ops

from ._checks import check_nonnegative, check_positive
from .cosface import margin_crossentropy

# Floor of 1 − c² under the sqrt: d sqrt(u)/du is infinite at u = 0 (c = ±1 exactly), and
# the floor's gradient there is 0. sin θ is then 1e-6 instead of 0: an error in φ below
# float32 rounding at 1. Every c < 1 in float32 has 1 − c² >= 1.2e-7, above the floor.
_SIN_FLOOR = 1e-12


def arcface_target(c, margin):
    """φ(c) = cos(θ + m) for the true-class cosine c = cos θ, in the insightface form.

    ```
    φ = c · cos m − sqrt(1 − c²) · sin m    if c > cos(π − m)   (θ + m < π)
    φ = c − m · sin(π − m)                  otherwise
    ```

    The second branch keeps φ decreasing in θ where θ + m would pass π (cos would rise
    again); it is the authors' choice and not continuous at the threshold. c is clipped to
    [−1, 1] and the sqrt floored, so value and gradient are finite at c = ±1.
    """
    c = ops.clip(c, -1.0, 1.0)
    sin = ops.sqrt(ops.maximum(1.0 - c * c, _SIN_FLOOR))
    phi = c * math.cos(margin) - sin * math.sin(margin)
    return ops.where(c > math.cos(math.pi - margin), phi, c - margin * math.sin(math.pi - margin))


def arcface_loss(y_true, y_pred, margin=0.5, scale=64.0):
    """Per-sample ArcFace loss (see `ArcFaceLoss`): `margin_crossentropy` with the true-class
    cosine c replaced by cos(θ + m) (`arcface_target`). (B,) float32."""
    margin = float(margin)
    return margin_crossentropy(y_true, y_pred, lambda c: arcface_target(c, margin), float(scale))


@keras.saving.register_keras_serializable(package="losses")
class ArcFaceLoss(keras.losses.Loss):
    """ArcFace: additive angular margin on the true class, then softmax cross entropy.

    Formula (c_ij = cos θ_ij, the cosine of embedding i to the proxy of class j):

    ```
    z_ij = cos(θ_ij + margin)  if j = y_i,  else c_ij     (see `arcface_target` for θ + m > π)
    loss_i = −log softmax(scale · z_i)_{y_i}
    ```

    `y_pred` are cosines, not logits: put `losses.ProxyHead(C)` (or any L2-normalised
    linear layer) at the end of the model. Finite loss and gradient for cosines exactly
    ±1 (the sqrt in sin θ is floored; a naive sqrt(1 − c²) gives NaN gradients there).

    Args:
        margin: angular margin m in radians, 0 <= m < π (default 0.5).
        scale: logit scale s > 0 (default 64.0).
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself
            is always float32).

    Example:

    >>> import numpy as np
    >>> loss = ArcFaceLoss(margin=0.5, scale=64.0)
    >>> round(float(loss(np.array([0]), np.array([[0.0, 0.0]]))), 4)  # ≈ 64 · sin 0.5
    30.6832

    Reference: Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
    Recognition", CVPR 2019, arXiv:1801.07698 (and the authors' insightface code).
    """

    def __init__(
        self,
        margin=0.5,
        scale=64.0,
        reduction="sum_over_batch_size",
        name="arcface_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_nonnegative("margin", margin)
        if self.margin >= math.pi:
            raise ValueError(f"Invalid margin={margin!r}: expected radians in [0, π).")
        self.scale = check_positive("scale", scale)

    def call(self, y_true, y_pred):
        return arcface_loss(y_true, y_pred, self.margin, self.scale)

    def get_config(self):
        config = super().get_config()
        config.update(margin=self.margin, scale=self.scale)
        return config
