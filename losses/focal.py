"""Softmax focal loss computed in log-space, stable for extreme logits and any gamma >= 0."""

import keras
from keras import ops

from ._checks import check_nonnegative, check_num_classes, check_weights
from ._labels import logits_and_labels, true_class
from .balanced import weights_from_labels


def true_and_rest(z, labels):
    """(z_y, r) for (B, C) float32 logits z, C >= 2, and (B,) int32 labels, both (B,):
    the true logit and r = logsumexp_{c≠y} z_c, the other classes' mass in log-space.

    Any softmax loss of one true class follows from these two without cancellation:
    −log p_y = softplus(r − z_y) and −log(1 − p_y) = softplus(z_y − r), finite for any gap
    between z_y and the rest (|logits| up to 1e4 and beyond).

    Cost: one exp over (B, C), shifted by the largest *other* logit so that its sum lies in
    [1, C − 1] (never underflows to log 0, whatever the true logit); the true class is a
    flat gather of B entries. That is one where, one max, one exp and one sum over (B, C);
    on TensorFlow's CPU kernels about half the forward time of the fused sparse softmax CE
    kernel at B = 4096, C = 1000 (that kernel also writes its (B, C) gradient), the same at
    C = 10 (benchmarks/losses.py).
    """
    is_true = ops.arange(ops.shape(z)[-1], dtype="int32")[None, :] == labels[:, None]
    z_true = true_class(z, labels)
    # −inf drops the true class: exp(−inf − top) = 0 with a zero gradient. `top` is finite
    # for C >= 2, and no gradient is needed through the shift (it cancels exactly).
    others = ops.where(is_true, -float("inf"), z)
    top = ops.stop_gradient(ops.max(others, axis=-1))
    rest = ops.log(ops.sum(ops.exp(others - top[:, None]), axis=-1)) + top
    return z_true, rest


def focal_loss(y_true, y_pred, gamma=2.0, alpha=None, from_logits=True):
    """Per-sample focal loss −α_y · (1 − p_y)^γ · log p_y.

    Everything comes from r = logsumexp_{c≠y} z_c (the other classes' mass) and z_y
    (`true_and_rest`), never from p itself:

    ```
    log p_y       = z_y − logaddexp(z_y, r) = −softplus(r − z_y)
    log(1 − p_y)  = r − logaddexp(z_y, r)   = −softplus(z_y − r)
    ```

    Both are exact and finite for any gap between z_y and the rest (|logits| up to 1e4 and
    beyond), with no cancellation in 1 − p_y. (1 − p_y)^γ = exp(γ·log(1 − p_y)) has the
    finite derivative γ·(1 − p_y)^γ with respect to log(1 − p_y), even for γ < 1 and
    p_y → 1, where the direct form (1 − p)^γ has an infinite slope.

    Cost: that of `true_and_rest` (one where, one max, one exp and one sum over (B, C)) plus
    (B,)-sized softplus terms, against two full logsumexps (two maxes, two exps) for the
    textbook log(1 − p_y) = logsumexp_{c≠y} z_c − logsumexp_c z_c.

    Args:
        y_true: labels (B,) or (B, 1), or one-hot (B, C); C >= 2.
        y_pred: (B, C) logits, or probabilities if `from_logits=False` (clipped to
            [epsilon, 1] and logged, then treated as logits).
        gamma: focusing parameter γ >= 0; γ = 0 gives cross entropy.
        alpha: None (1), a scalar, or a list of C per-class weights.
        from_logits: whether `y_pred` holds logits.

    Returns:
        (B,) float32 losses.
    """
    z, labels = logits_and_labels(y_true, y_pred, from_logits)
    z_true, rest = true_and_rest(z, labels)
    log_p = -ops.softplus(rest - z_true)
    log_1mp = -ops.softplus(z_true - rest)
    loss = -ops.exp(float(gamma) * log_1mp) * log_p
    if alpha is None:
        return loss
    if isinstance(alpha, (int, float)):
        return float(alpha) * loss
    return ops.take(ops.convert_to_tensor(alpha, "float32"), labels) * loss


@keras.saving.register_keras_serializable(package="losses")
class FocalLoss(keras.losses.Loss):
    """Softmax focal loss: cross entropy that down-weights well-classified examples.

    Formula:

    ```
    loss_i = -alpha_{y_i} · (1 - p_{i, y_i})^gamma · log p_{i, y_i},   p_i = softmax(y_pred_i)
    ```

    Computed in log-space: finite loss and gradients for |logits| up to 1e4, any γ >= 0
    and p_y → 1 (Keras's `CategoricalFocalCrossentropy` clips p to [1e-7, 1 − 1e-7], so its
    loss saturates near 16.1 with a zero gradient on confident mistakes).

    Args:
        gamma: focusing parameter γ >= 0 (default 2.0). γ = 0 and alpha=None is plain CE.
        alpha: None (all 1), a scalar, or one weight per class. The paper's α = 0.25 is for
            the positive class of a binary problem, not a per-class softmax default.
        from_logits: `y_pred` holds logits (default True) or probabilities.
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself
            is always float32).

    Example:

    >>> import numpy as np
    >>> loss = FocalLoss(gamma=2.0)
    >>> round(float(loss(np.array([0]), np.array([[0.0, 0.0]]))), 4)  # 0.5² · log 2
    0.1733

    Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017,
    arXiv:1708.02002.
    """

    def __init__(
        self,
        gamma=2.0,
        alpha=None,
        from_logits=True,
        reduction="sum_over_batch_size",
        name="focal_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma = check_nonnegative("gamma", gamma)
        if alpha is not None and not isinstance(alpha, (int, float)):
            alpha = check_weights("alpha", alpha)
        elif alpha is not None:
            alpha = check_nonnegative("alpha", alpha)
        self.alpha = alpha
        self.from_logits = bool(from_logits)

    @classmethod
    def from_labels(cls, labels, num_classes=None, beta=0.9999, gamma=2.0, **kwargs):
        """Class-balanced focal loss: `alpha` = the effective-number weights of the labels.

        α_c ∝ (1 − β)/(1 − β^{n_c}), normalised as `weights_from_labels` does
        (Σ_c (n_c/N)·α_c = 1, the scale of the unweighted loss on the training data; Cui et
        al. normalise to Σ_c α_c = C). β = 0 gives α = 1, β → 1 inverse frequency.

        >>> loss = FocalLoss.from_labels([0, 0, 0, 1], beta=0.9999)
        >>> [round(a, 4) for a in loss.alpha]   # ≈ inverse frequency [2/3, 2]
        [0.6667, 1.9999]

        Raises ValueError for a class with no examples or `beta` outside [0, 1).

        Reference: Cui et al., "Class-Balanced Loss Based on Effective Number of Samples",
        CVPR 2019, arXiv:1901.05555.
        """
        alpha = weights_from_labels(labels, num_classes, beta)
        return cls(gamma=gamma, alpha=alpha, **kwargs)

    def call(self, y_true, y_pred):
        if isinstance(self.alpha, list):
            check_num_classes("alpha", self.alpha, y_pred.shape[-1])
        return focal_loss(y_true, y_pred, self.gamma, self.alpha, self.from_logits)

    def get_config(self):
        config = super().get_config()
        config.update(gamma=self.gamma, alpha=self.alpha, from_logits=self.from_logits)
        return config
