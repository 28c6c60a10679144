"""Label masks over the (B, B) pair matrix and the pair-distance summaries both metric losses
report in `statistics()`."""

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
