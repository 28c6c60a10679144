"""CosFace (large margin cosine loss): softmax on scaled cosines, true class minus a margin."""

import keras
from keras import ops

from ._checks import check_nonnegative, check_positive
from ._labels import to_float32, to_labels, true_class


def margin_crossentropy(y_true, y_pred, target, scale):
    """Per-sample CE of `scale · z`, z = the cosines with the true class c_y replaced by
    `target(c_y)`: the margin losses (CosFace, ArcFace) differ only in `target`.

    ```
    loss_i = logsumexp_c(scale · z_ic) − scale · target(c_{i,y_i})
    ```

    Args:
        y_true: labels (B,) or (B, 1), or one-hot (B, C).
        y_pred: (B, C) cosines in [−1, 1] (e.g. from `ProxyHead`), any float dtype.
        target: (B,) true-class cosines → (B,) margin-adjusted ones.
        scale: logit scale s.

    Returns:
        (B,) float32 losses. Cost: one (B, C) where and one logsumexp (max-shifted: finite
        for any scale).
    """
    cosines = to_float32(y_pred)
    labels = to_labels(y_true, cosines.shape[-1])
    adjusted = target(true_class(cosines, labels))
    is_true = ops.arange(ops.shape(cosines)[-1], dtype="int32")[None, :] == labels[:, None]
    z = ops.where(is_true, adjusted[:, None], cosines)
    return ops.logsumexp(scale * z, axis=-1) - scale * adjusted


def cosface_loss(y_true, y_pred, margin=0.35, scale=64.0):
    """Per-sample CosFace loss (see `CosFaceLoss`): `margin_crossentropy` with the true-class
    cosine lowered by `margin`. (B,) float32."""
    margin = float(margin)
    return margin_crossentropy(y_true, y_pred, lambda c: c - margin, float(scale))


@keras.saving.register_keras_serializable(package="losses")
class CosFaceLoss(keras.losses.Loss):
    """CosFace: additive cosine margin on the true class, then softmax cross entropy.

    Formula (c_ij = cosine of embedding i to the proxy / class weight of class j):

    ```
    z_ij = c_ij − margin  if j = y_i,  else c_ij
    loss_i = −log softmax(scale · z_i)_{y_i}
    ```

    `y_pred` are cosines, not logits: put `losses.ProxyHead(C)` (or any L2-normalised
    linear layer) at the end of the model. margin = 0 is a normalised softmax with
    temperature 1 / scale.

    Args:
        margin: cosine margin m >= 0 (default 0.35, the paper's best on LFW/YTF).
        scale: logit scale s > 0 (default 64.0).
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself
            is always float32).

    Example:

    >>> import numpy as np
    >>> loss = CosFaceLoss(margin=0.35, scale=64.0)
    >>> round(float(loss(np.array([0]), np.array([[0.0, 0.0]]))), 4)  # ≈ 64 · 0.35
    22.4

    Reference: Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition",
    CVPR 2018, arXiv:1801.09414.
    """

    def __init__(
        self,
        margin=0.35,
        scale=64.0,
        reduction="sum_over_batch_size",
        name="cosface_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_nonnegative("margin", margin)
        self.scale = check_positive("scale", scale)

    def call(self, y_true, y_pred):
        return cosface_loss(y_true, y_pred, self.margin, self.scale)

    def get_config(self):
        config = super().get_config()
        config.update(margin=self.margin, scale=self.scale)
        return config
