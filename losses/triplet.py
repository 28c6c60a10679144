"""Triplet loss with semi-hard, batch-hard or batch-all mining, O(B²) memory."""

import keras
from keras import ops

from . import mining
from ._checks import check_choice, check_nonnegative
from ._labels import to_labels
from ._pairs import pair_distance_stats, pair_masks, safe_ratio
from .catalog import DISTANCES, MINING
from .distances import pairwise_distances


def _terms(labels, d, margin, mining_mode, soft, with_loss=True):
    """The loss's terms, summed per anchor, and the counts its mean and statistics need.

    Returns:
        per_anchor: (B,) sum of the terms whose anchor is a.
        n_terms: how many terms the loss averages over.
        n_active: how many candidate terms have x + margin > 0.
        n_candidates: how many candidate terms there are (pairs, anchors or triplets).
    """
    positive, negative = pair_masks(labels)
    if mining_mode == "all":
        hinge, active = mining.batch_all_hinge(d, positive, negative, margin)
        n_neg = ops.sum(ops.cast(negative, "int32"), axis=1)
        n_candidates = ops.sum(ops.where(positive, n_neg[:, None], 0))
        n_active = ops.sum(active)
        if soft:
            # O(B³) time: skipped when only the statistics are wanted.
            per_anchor = mining.batch_all_soft(d, positive, negative) if with_loss else None
            return per_anchor, n_candidates, n_active, n_candidates
        return ops.sum(hinge, axis=1), n_active, n_active, n_candidates
    if mining_mode == "semi-hard":
        # One term per valid (a, p); the (B, B) terms exist one block of anchors at a time.
        per_anchor, active, valid = mining.semi_hard_hinge(d, positive, negative, margin, soft)
        n_valid = ops.sum(ops.cast(valid, "int32"))
        return per_anchor, n_valid, ops.sum(active), n_valid
    x, valid = mining.batch_hard(d, positive, negative)  # (B,): one term per anchor
    h = ops.softplus(x) if soft else ops.relu(x + margin)
    per_anchor = ops.where(valid, h, 0.0)
    n_valid = ops.sum(ops.cast(valid, "int32"))
    n_active = ops.sum(ops.cast(ops.logical_and(valid, x + margin > 0), "int32"))
    return per_anchor, n_valid, n_active, n_valid


def triplet_loss(y_true, y_pred, margin=0.2, mining="semi-hard", distance="euclidean", soft=False):
    """Per-anchor shares of the triplet loss; their mean over the batch is the loss.

    The loss is a mean over mined terms (pairs, anchors or triplets, see `TripletLoss`).
    Anchor a gets B · (sum of its terms) / (number of terms), so that Keras's default
    "sum_over_batch_size" reduction returns exactly that mean, `reduction="none"` shows
    which anchors carry the loss, and a batch without any valid term gives 0, not NaN.

    Args:
        y_true: integer labels (B,) or (B, 1).
        y_pred: (B, D) embeddings, any float dtype (computed in float32).
        margin, mining, distance, soft: see `TripletLoss`.

    Returns:
        (B,) float32.
    """
    d = pairwise_distances(y_pred, distance)
    per_anchor, n_terms, _, _ = _terms(to_labels(y_true), d, margin, mining, soft)
    batch = ops.cast(ops.shape(d)[0], "float32")
    return per_anchor * batch / ops.maximum(ops.cast(n_terms, "float32"), 1.0)


@keras.saving.register_keras_serializable(package="losses")
class TripletLoss(keras.losses.Loss):
    """Triplet loss on a batch of labelled embeddings, with online mining.

    Formula (a anchor, p positive: same label, n negative: other label):

    ```
    x = d(a, p) - d(a, n);   h(x) = max(x + margin, 0), or softplus(x) if soft
    semi-hard: per (a, p): n = nearest negative with d(a, n) > d(a, p), else the farthest;
               loss = mean over (a, p) of h(x)
    hard:      per anchor: x = max_p d(a, p) - min_n d(a, n); loss = mean over anchors of h(x)
    all:       every triplet; mean over those with h > 0 (soft: over all of them)
    ```

    Batches with no valid term give 0. Memory is O(B²) for every mode (semi-hard uses a
    sort plus a batched binary search, 512 anchors at a time, instead of TF Addons' B²×B
    tiling; at B = 4096, D = 64, forward + backward on TensorFlow grows the peak RSS by
    ~0.4 GiB in eager mode and ~0.5 GiB in a tf.function: `python -m benchmarks.mining`).
    `call()` returns per-anchor shares (see `triplet_loss`), so reductions and
    `sample_weight` follow Keras.

    Args:
        margin: margin >= 0 of the hinge (default 0.2); unused by the soft loss itself
            but still defines `statistics()["active_fraction"]`.
        mining: `"semi-hard"` (default), `"hard"` or `"all"`.
        distance: `"euclidean"` (default), `"squared"` or `"cosine"`.
        soft: softplus instead of the hinge (Hermans et al.).
        reduction, name, dtype: as for every `keras.losses.Loss`.

    Example:

    >>> import numpy as np
    >>> loss = TripletLoss(margin=0.2, mining="hard")
    >>> emb = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    >>> round(float(loss(np.array([0, 0, 1, 1]), emb)), 4)  # every anchor: 1 - 1 + 0.2
    0.2

    Reference: Schroff et al., "FaceNet", CVPR 2015 (semi-hard); Hermans et al., "In
    Defense of the Triplet Loss for Person Re-Identification", 2017 (hard, all, soft).
    """

    def __init__(
        self,
        margin=0.2,
        mining="semi-hard",
        distance="euclidean",
        soft=False,
        reduction="sum_over_batch_size",
        name="triplet_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_nonnegative("margin", margin)
        self.mining = check_choice("mining", mining, MINING)
        self.distance = check_choice("distance", distance, DISTANCES)
        self.soft = bool(soft)

    def call(self, y_true, y_pred):
        return triplet_loss(y_true, y_pred, self.margin, self.mining, self.distance, self.soft)

    def statistics(self, y_true, y_pred):
        """Scalar diagnostics of a batch (no gradient needed).

        Returns:
            dict: `active_fraction` (share of candidate terms with x + margin > 0: mined
            pairs, anchors, or all valid triplets for "all"), `mean_pos_distance` and
            `mean_neg_distance` (over same- / different-label pairs i < j); 0 when empty.
        """
        labels = to_labels(y_true)
        d = ops.stop_gradient(pairwise_distances(y_pred, self.distance))
        _, _, n_active, n_candidates = _terms(
            labels, d, self.margin, self.mining, self.soft, with_loss=False
        )
        stats = {"active_fraction": safe_ratio(n_active, n_candidates)}
        stats.update(pair_distance_stats(d, *pair_masks(labels)))
        return stats

    def get_config(self):
        config = super().get_config()
        config.update(
            margin=self.margin, mining=self.mining, distance=self.distance, soft=self.soft
        )
        return config
