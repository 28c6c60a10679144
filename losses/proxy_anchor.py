"""Proxy-Anchor loss: each class proxy pulls its batch positives and pushes the negatives."""

import keras
from keras import ops

from ._checks import check_nonnegative, check_positive
from ._labels import to_float32, to_labels


def _log1p_sum_exp(x, members):
    """Per column j: log(1 + Σ_{i: members[i, j]} e^{x_ij}), and each member's share of it.

    Returns:
        term: (C,) the log-sum-exp with a 0 term; 0 for a column without members.
        share: (B, C) e^{x_ij} / Σ_i e^{x_ij} over the members of column j (0 elsewhere);
            each non-empty column sums to 1.

    Shifted by the largest member of each column (no gradient needed through the shift),
    so every exp lies in (0, 1] and the largest is 1: no overflow for any α, and the shares
    are exact even when e^{x} itself would under- or overflow in float32.
    """
    has = ops.any(members, axis=0)
    top = ops.max(ops.where(members, x, -float("inf")), axis=0)
    top = ops.stop_gradient(ops.where(has, top, 0.0))
    e = ops.where(members, ops.exp(ops.where(members, x, top[None, :]) - top[None, :]), 0.0)
    total = ops.sum(e, axis=0)  # >= 1 for a non-empty column, 0 for an empty one
    # where, not maximum: a one-member column has total exactly 1, and torch splits the
    # gradient of maximum at a tie in half (TensorFlow gives it to the first argument).
    total = ops.where(has, total, 1.0)
    term = ops.where(has, ops.softplus(top + ops.log(total)), 0.0)
    return term, e / total[None, :]


def proxy_anchor_loss(y_true, y_pred, alpha=32.0, delta=0.1):
    """Per-sample shares of the Proxy-Anchor loss; their mean over the batch is the loss.

    The loss is one value per batch (sums over proxies, see `ProxyAnchorLoss`). Each
    proxy's log(1 + Σ_x e^{…}) is split among its samples x in proportion to their e^{…}
    and scaled by B, so Keras's default "sum_over_batch_size" reduction returns exactly the
    loss (gradients included: the shares sum to it identically) and `reduction="none"`
    shows which samples carry it.

    Args:
        y_true: labels (B,) or (B, 1), or one-hot (B, C).
        y_pred: (B, C) cosines s(x, p) to the C proxies (e.g. from `ProxyHead`).
        alpha, delta: see `ProxyAnchorLoss`.

    Returns:
        (B,) float32.
    """
    s = to_float32(y_pred)
    num_classes = s.shape[-1]
    labels = to_labels(y_true, num_classes)
    positive = ops.arange(ops.shape(s)[-1], dtype="int32")[None, :] == labels[:, None]
    # (B, C) each: the exponents of the two sums; O(B·C) memory, no B×B matrix.
    pos_term, pos_share = _log1p_sum_exp(-alpha * (s - delta), positive)
    neg_term, neg_share = _log1p_sum_exp(alpha * (s + delta), ops.logical_not(positive))
    # |P⁺| >= 1 for any non-empty batch; |P| = C, every proxy.
    n_pos_proxies = ops.sum(ops.cast(ops.any(positive, axis=0), "float32"))
    n_proxies = ops.cast(ops.shape(s)[-1], "float32")
    batch = ops.cast(ops.shape(s)[0], "float32")
    per_sample = ops.sum(pos_share * pos_term[None, :], axis=1) / ops.maximum(n_pos_proxies, 1.0)
    per_sample += ops.sum(neg_share * neg_term[None, :], axis=1) / n_proxies
    return batch * per_sample


@keras.saving.register_keras_serializable(package="losses")
class ProxyAnchorLoss(keras.losses.Loss):
    """Proxy-Anchor loss on the cosines of a batch to one learned proxy per class.

    Formula (s(x, p) cosine of sample x to proxy p; X_p⁺ the batch samples of p's class,
    X_p⁻ the others; P all C proxies, P⁺ those with a positive in the batch):

    ```
    loss = 1/|P⁺| Σ_{p ∈ P⁺} log(1 + Σ_{x ∈ X_p⁺} exp(−alpha · (s(x, p) − delta)))
         + 1/|P|  Σ_{p ∈ P}  log(1 + Σ_{x ∈ X_p⁻} exp( alpha · (s(x, p) + delta)))
    ```

    `y_pred` are the cosines from `losses.ProxyHead(C)`, whose weight holds the proxies
    (so `fit` trains them). Each log(1 + Σ exp) is a max-shifted log-sum-exp: finite for
    any alpha. The value is per batch; `call()` returns per-sample shares (see
    `proxy_anchor_loss`), so the default reduction gives exactly the loss and
    `sample_weight` scales each sample's share (it does not reweight inside the sums).

    Args:
        alpha: scale α > 0 (default 32.0, the paper's).
        delta: margin δ >= 0 (default 0.1, the paper's).
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself
            is always float32).

    Example:

    >>> import numpy as np
    >>> loss = ProxyAnchorLoss(alpha=32.0, delta=0.1)
    >>> cosines = np.array([[1.0, 0.0], [0.0, 1.0]])  # each sample on its own proxy
    >>> # positives at s = 1 cost ≈ 0; each proxy's negative at s = 0 costs log(1 + e^{α·δ})
    >>> round(float(loss(np.array([0, 1]), cosines)), 4)
    3.24

    Reference: Kim et al., "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020,
    arXiv:2003.13911.
    """

    def __init__(
        self,
        alpha=32.0,
        delta=0.1,
        reduction="sum_over_batch_size",
        name="proxy_anchor_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = check_positive("alpha", alpha)
        self.delta = check_nonnegative("delta", delta)

    def call(self, y_true, y_pred):
        return proxy_anchor_loss(y_true, y_pred, self.alpha, self.delta)

    def get_config(self):
        config = super().get_config()
        config.update(alpha=self.alpha, delta=self.delta)
        return config
