"""Label masks over the (B, B) pair matrix, the masked row log-sum-exp of the pair losses,
and the pair-distance summaries both metric losses report in `statistics()`."""

import math

from keras import ops


def pair_masks(labels):
    """Boolean (B, B) masks from int labels (B,).

    Returns:
        (positive, negative): positive[i, j] = same label and i != j;
        negative[i, j] = different labels.
    """
    same = labels[:, None] == labels[None, :]
    not_self = ~ops.eye(ops.shape(labels)[0], dtype="bool")
    return ops.logical_and(same, not_self), ops.logical_not(same)


def masked_logsumexp(x, mask, add_one=False):
    """Row-wise log Σ_{j: mask[i, j]} exp(x[i, j]), with an extra e⁰ = 1 term if `add_one`.

    Stable for any magnitude (β = 50 and beyond): the row maximum is subtracted before exp.
    No inf enters the arithmetic that carries gradients, so entries outside the mask get
    exactly zero gradient, never NaN. A row with no True entry gives 0: exactly log(1) with
    `add_one`; without it the true value is −inf and the caller must mask that row.
    Shared by the multi-similarity, circle and SupCon losses.

    Args:
        x: (B, M) float32.
        mask: (B, M) bool, the entries that enter the sum.
        add_one: log(1 + Σ exp) instead of log Σ exp.

    Returns:
        (B,) float32.
    """
    shift = ops.max(ops.where(mask, x, -math.inf), axis=1)
    if add_one:
        shift = ops.maximum(shift, 0.0)
    else:
        shift = ops.where(ops.any(mask, axis=1), shift, 0.0)
    shift = ops.stop_gradient(shift)[:, None]
    # Outside the mask exp sees x := shift, i.e. exp(0): finite in value and derivative.
    terms = ops.where(mask, ops.exp(ops.where(mask, x, shift) - shift), 0.0)
    total = ops.sum(terms, axis=1)
    if add_one:
        total = total + ops.exp(-shift[:, 0])
    return shift[:, 0] + ops.log(ops.where(total > 0, total, 1.0))


def masked_mean(values, mask):
    """Mean of `values` where `mask` is True; 0 (not NaN) when the mask is empty."""
    mask = ops.cast(mask, values.dtype)
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


def safe_ratio(numerator, denominator):
    """numerator / denominator as float32, and 0 when the denominator is 0."""
    numerator = ops.cast(numerator, "float32")
    return numerator / ops.maximum(ops.cast(denominator, "float32"), 1.0)


def pair_distance_stats(d, positive, negative):
    """Mean distance over same-label and different-label pairs (each 0 if there are none).

    Averaging the symmetric (B, B) matrix over i != j equals averaging over i < j.
    """
    return {
        "mean_pos_distance": masked_mean(d, positive),
        "mean_neg_distance": masked_mean(d, negative),
    }
