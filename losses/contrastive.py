"""Contrastive (pairwise) loss on labelled embeddings, Hadsell, Chopra & LeCun 2006."""

import keras
from keras import ops

from ._checks import check_choice, check_nonnegative
from ._labels import to_labels
from ._pairs import pair_distance_stats, pair_masks, safe_ratio
from .catalog import DISTANCES
from .distances import pairwise_distances


def _pair_terms(labels, d, margin):
    """(B, B) pair losses (d² or max(margin − d, 0)²) and the two pair masks."""
    positive, negative = pair_masks(labels)
    terms = ops.where(positive, ops.square(d), ops.square(ops.relu(margin - d)))
    return terms, positive, negative


def contrastive_loss(y_true, y_pred, margin=1.0, distance="euclidean"):
    """Per-sample shares of the contrastive loss; their mean over the batch is the loss.

    The loss averages over unordered pairs i < j. Each pair's term is split evenly between
    its two samples and scaled by B, so the mean of the (B,) output equals the loss
    (same-label mean + different-label mean) and Keras's reductions apply as usual.

    Args:
        y_true: integer labels (B,) or (B, 1).
        y_pred: (B, D) embeddings, any float dtype (computed in float32).
        margin, distance: see `ContrastiveLoss`.

    Returns:
        (B,) float32.
    """
    d = pairwise_distances(y_pred, distance)
    terms, positive, negative = _pair_terms(to_labels(y_true), d, margin)
    # Ordered pairs i != j count each unordered pair twice: the counts and sums both double.
    n_pos = ops.sum(ops.cast(positive, "float32"))
    n_neg = ops.sum(ops.cast(negative, "float32"))
    weight = ops.where(
        positive,
        1.0 / ops.maximum(n_pos, 1.0),
        ops.where(negative, 1.0 / ops.maximum(n_neg, 1.0), 0.0),
    )
    batch = ops.cast(ops.shape(d)[0], "float32")
    return batch * ops.sum(weight * terms, axis=1)


@keras.saving.register_keras_serializable(package="losses")
class ContrastiveLoss(keras.losses.Loss):
    """Contrastive loss: pull same-label pairs together, push others beyond a margin.

    Formula (over all unordered pairs i < j of the batch):

    ```
    loss = mean_{same label} d_ij² + mean_{different label} max(margin - d_ij, 0)²
    ```

    A kind of pair that is absent from the batch contributes 0. `call()` returns
    per-sample shares (see `contrastive_loss`).

    Args:
        margin: margin >= 0 for different-label pairs (default 1.0).
        distance: `"euclidean"` (default), `"squared"` or `"cosine"`.
        reduction, name, dtype: as for every `keras.losses.Loss`.

    Example:

    >>> import numpy as np
    >>> loss = ContrastiveLoss(margin=1.0)
    >>> emb = np.array([[0.0, 0.0], [0.0, 0.5], [0.0, 1.0]])
    >>> round(float(loss(np.array([0, 0, 1]), emb)), 4)  # 0.25 + (0 + 0.25) / 2
    0.375

    Reference: Hadsell, Chopra & LeCun, "Dimensionality Reduction by Learning an Invariant
    Mapping", CVPR 2006.
    """

    def __init__(
        self,
        margin=1.0,
        distance="euclidean",
        reduction="sum_over_batch_size",
        name="contrastive_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_nonnegative("margin", margin)
        self.distance = check_choice("distance", distance, DISTANCES)

    def call(self, y_true, y_pred):
        return contrastive_loss(y_true, y_pred, self.margin, self.distance)

    def statistics(self, y_true, y_pred):
        """Scalar diagnostics of a batch.

        Returns:
            dict: `active_fraction` (share of pairs i < j with a non-zero term),
            `mean_pos_distance`, `mean_neg_distance`; each 0 when there are no such pairs.
        """
        labels = to_labels(y_true)
        d = ops.stop_gradient(pairwise_distances(y_pred, self.distance))
        terms, positive, negative = _pair_terms(labels, d, self.margin)
        pairs = ops.logical_or(positive, negative)
        n_active = ops.sum(ops.cast(ops.logical_and(pairs, terms > 0), "int32"))
        stats = {"active_fraction": safe_ratio(n_active, ops.sum(ops.cast(pairs, "int32")))}
        stats.update(pair_distance_stats(d, positive, negative))
        return stats

    def get_config(self):
        config = super().get_config()
        config.update(margin=self.margin, distance=self.distance)
        return config
