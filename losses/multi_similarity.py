"""Multi-similarity loss with its pair mining, Wang et al. 2019, O(B²) memory."""

import math

import keras
from keras import ops

from ._checks import check_finite, check_nonnegative, check_positive
from ._labels import to_labels
from ._pairs import masked_logsumexp, pair_masks
from .distances import pairwise_distances


def _mined_pairs(s, positive, negative, epsilon):
    """The pairs MS mining keeps: positive j of anchor i if S_ij − ε < max_{k∈N_i} S_ik,
    negative k if S_ik + ε > min_{j∈P_i} S_ij. (B, B) bool each; no gradient involved."""
    s = ops.stop_gradient(s)
    # ±inf where an anchor has no negative (no positive): then nothing is kept.
    hardest_negative = ops.max(ops.where(negative, s, -math.inf), axis=1, keepdims=True)
    hardest_positive = ops.min(ops.where(positive, s, math.inf), axis=1, keepdims=True)
    keep_positive = ops.logical_and(positive, s - epsilon < hardest_negative)
    keep_negative = ops.logical_and(negative, s + epsilon > hardest_positive)
    return keep_positive, keep_negative


def multi_similarity_loss(
    y_true, y_pred, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1, mining=True
):
    """Per-anchor multi-similarity losses; their mean over the batch is the loss.

    The loss is the sum over anchors divided by the batch size B (as in the authors' code),
    so the (B,) output is each anchor's own term: 0 for an anchor with no (kept) positive or
    no (kept) negative, and Keras's default "sum_over_batch_size" returns the loss exactly.

    Args:
        y_true: integer labels (B,), (B, 1) or one-hot (B, C).
        y_pred: (B, D) embeddings, any float dtype (computed in float32; rows are
            L2-normalised inside, so S is the cosine similarity).
        alpha, beta, base, epsilon, mining: see `MultiSimilarityLoss`.

    Returns:
        (B,) float32.
    """
    s = 1.0 - pairwise_distances(y_pred, "cosine")  # (B, B) cosine similarity
    positive, negative = pair_masks(to_labels(y_true))
    if mining:
        positive, negative = _mined_pairs(s, positive, negative, epsilon)
    pull = masked_logsumexp(-alpha * (s - base), positive, add_one=True) / alpha
    push = masked_logsumexp(beta * (s - base), negative, add_one=True) / beta
    valid = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
    return ops.where(valid, pull + push, 0.0)


@keras.saving.register_keras_serializable(package="losses")
class MultiSimilarityLoss(keras.losses.Loss):
    """Multi-similarity loss: soft-weighted positive and negative pairs, with pair mining.

    Formula (S cosine similarity; P_i, N_i the positives j != i and negatives of anchor i):

    ```
    mining: keep j ∈ P_i if S_ij − ε < max_{k∈N_i} S_ik
            keep k ∈ N_i if S_ik + ε > min_{j∈P_i} S_ij
    l_i  = 1/α · log(1 + Σ_{kept j} exp(−α (S_ij − base)))
         + 1/β · log(1 + Σ_{kept k} exp( β (S_ik − base)))      (0 without kept j or kept k)
    loss = Σ_i l_i / B
    ```

    Both logs are computed as a log-sum-exp with a zero term, so β = 50 (or 500) cannot
    overflow. Memory O(B²). A batch with one class or without any positive gives 0.
    Unlike the authors' code, which drops every positive with S ≥ 1 − 1e-5 (the anchor
    itself, but also exact duplicates), only the anchor itself is excluded here.

    Args:
        alpha: scale α > 0 of the positive pairs (default 2.0).
        beta: scale β > 0 of the negative pairs (default 50.0).
        base: similarity offset λ of both terms (default 0.5).
        epsilon: mining margin ε >= 0 (default 0.1).
        mining: mine pairs as above (default True); False keeps every pair.
        reduction, name, dtype: as for every `keras.losses.Loss`.

    Example:

    >>> import numpy as np
    >>> loss = MultiSimilarityLoss()
    >>> emb = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    >>> # each anchor: its positive at S = 0, kept negative at S = 0: log(1 + e) / 2 + ~0
    >>> round(float(loss(np.array([0, 0, 1, 1]), emb)), 4)
    0.6566

    Reference: Wang et al., "Multi-Similarity Loss with General Pair Weighting for Deep
    Metric Learning", CVPR 2019.
    """

    def __init__(
        self,
        alpha=2.0,
        beta=50.0,
        base=0.5,
        epsilon=0.1,
        mining=True,
        reduction="sum_over_batch_size",
        name="multi_similarity_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = check_positive("alpha", alpha)
        self.beta = check_positive("beta", beta)
        self.base = check_finite("base", base)
        self.epsilon = check_nonnegative("epsilon", epsilon)
        self.mining = bool(mining)

    def call(self, y_true, y_pred):
        return multi_similarity_loss(
            y_true, y_pred, self.alpha, self.beta, self.base, self.epsilon, self.mining
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            alpha=self.alpha, beta=self.beta, base=self.base, epsilon=self.epsilon,
            mining=self.mining,
        )
        return config
