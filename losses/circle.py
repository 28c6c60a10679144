"""Circle loss on labelled embeddings, Sun et al. 2020, with the paper's stopped weights."""

import keras
from keras import ops

from ._checks import check_nonnegative, check_positive
from ._labels import to_labels
from ._pairs import masked_logsumexp, pair_masks
from .distances import pairwise_distances


def circle_loss(y_true, y_pred, margin=0.4, gamma=80.0):
    """Per-anchor shares of the circle loss; their mean over the batch is the loss.

    The loss is a mean over the anchors that have a positive and a negative. Such an anchor
    gets B · l_i / (number of such anchors), the others 0, so Keras's default
    "sum_over_batch_size" returns exactly that mean and a batch without any gives 0.

    Args:
        y_true: integer labels (B,), (B, 1) or one-hot (B, C).
        y_pred: (B, D) embeddings, any float dtype (computed in float32; rows are
            L2-normalised inside, so S is the cosine similarity).
        margin, gamma: see `CircleLoss`.

    Returns:
        (B,) float32.
    """
    s = 1.0 - pairwise_distances(y_pred, "cosine")  # (B, B) cosine similarity
    positive, negative = pair_masks(to_labels(y_true))
    # The weights are constants of each step (the paper's and the authors' `detach()`).
    alpha_p = ops.stop_gradient(ops.relu(1.0 + margin - s))
    alpha_n = ops.stop_gradient(ops.relu(s + margin))
    pull = masked_logsumexp(-gamma * alpha_p * (s - (1.0 - margin)), positive)
    push = masked_logsumexp(gamma * alpha_n * (s - margin), negative)
    valid = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
    per_anchor = ops.where(valid, ops.softplus(push + pull), 0.0)
    batch = ops.cast(ops.shape(s)[0], "float32")
    n_valid = ops.sum(ops.cast(valid, "float32"))
    return per_anchor * batch / ops.maximum(n_valid, 1.0)


@keras.saving.register_keras_serializable(package="losses")
class CircleLoss(keras.losses.Loss):
    """Circle loss: each similarity weighted by its distance from its own optimum.

    Formula (s_p, s_n cosine similarities of anchor i to its positives j != i and its
    negatives; α under stop-gradient):

    ```
    α_p = [1 + m − s_p]₊,   α_n = [s_n + m]₊
    l_i = softplus(logsumexp_n γ α_n (s_n − m) + logsumexp_p −γ α_p (s_p − (1 − m)))
    loss = mean of l_i over anchors with at least one positive and one negative
    ```

    A batch without such an anchor gives 0. Memory O(B²). On L2-normalised inputs the value
    equals `keras.losses.Circle(gamma, margin)` (Keras 3.7+) under the default reduction, but
    Keras differentiates through α_p and α_n, so its gradient is not the paper's. Keras's
    `reduction="none"` gives l_i itself, and it averages over anchors with l_i > 0 rather
    than those with a positive and a negative (the same unless l_i underflows to 0).

    Args:
        margin: relaxation m >= 0 (default 0.4); optima 1 + m and −m, decision
            margins 1 − m and m.
        gamma: scale γ > 0 (default 80.0).
        reduction, name, dtype: as for every `keras.losses.Loss`.

    Example:

    >>> import numpy as np
    >>> loss = CircleLoss(margin=0.4, gamma=80.0)
    >>> emb = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    >>> # each anchor: s_p = 0 gives 80·1.4·0.6 = 67.2; negatives at −1 (α_n = 0) and 0
    >>> round(float(loss(np.array([0, 0, 1, 1]), emb)), 4)
    67.2

    Reference: Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity
    Optimization", CVPR 2020.
    """

    def __init__(
        self,
        margin=0.4,
        gamma=80.0,
        reduction="sum_over_batch_size",
        name="circle_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_nonnegative("margin", margin)
        self.gamma = check_positive("gamma", gamma)

    def call(self, y_true, y_pred):
        return circle_loss(y_true, y_pred, self.margin, self.gamma)

    def get_config(self):
        config = super().get_config()
        config.update(margin=self.margin, gamma=self.gamma)
        return config
