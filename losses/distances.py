"""Pairwise distances between the rows of an embedding batch, O(B²) memory.

All three use the Gram matrix E·Eᵀ (one (B, B) matmul) rather than the (B, B, D) tensor of
differences, which would need B²·D floats (4 GB at B = 4096, D = 64).
"""

from keras import ops

from ._checks import check_choice
from ._labels import to_float32
from .catalog import DISTANCES

# Below this squared distance the euclidean distance is reported as exactly 0. The
# derivative of sqrt(t) is 1/(2·sqrt(t)): infinite at t = 0 (identical embeddings, and the
# diagonal of every distance matrix), which turns into NaN gradients. Masking keeps both
# the value and the gradient finite (the largest possible gradient factor is 1/(2·1e-8)).
_SQRT_FLOOR = 1e-16
# Normalising a zero vector divides by zero; the floor makes it stay a zero vector.
_NORM_FLOOR = 1e-12


def pairwise_distances(embeddings, distance="euclidean"):
    """Distance between every pair of rows.

    Args:
        embeddings: (B, D) tensor; float16/bfloat16 are cast to float32.
        distance: `"euclidean"` ‖a − b‖ (finite gradient at 0), `"squared"` ‖a − b‖², or
            `"cosine"` 1 − cos(a, b) (rows normalised inside; a zero row is at distance 1
            from everything else).

    Returns:
        (B, B) float32 tensor, symmetric, >= 0, with an exact zero diagonal.
    """
    check_choice("distance", distance, DISTANCES)
    x = to_float32(embeddings)
    if distance == "cosine":
        norm = ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=1, keepdims=True), _NORM_FLOOR))
        x = x / norm
        d = ops.clip(1.0 - ops.matmul(x, ops.transpose(x)), 0.0, 2.0)
    else:
        squared_norms = ops.sum(ops.square(x), axis=1)
        gram = ops.matmul(x, ops.transpose(x))
        # ‖a‖² + ‖b‖² − 2a·b can come out slightly negative from rounding: clamp at 0.
        d = ops.maximum(squared_norms[:, None] + squared_norms[None, :] - 2.0 * gram, 0.0)
        if distance == "euclidean":
            d = safe_sqrt(d)
    # A boolean eye (B² bytes) rather than a float one (4·B²): peak memory matters at large B.
    return ops.where(ops.eye(ops.shape(d)[0], dtype="bool"), 0.0, d)


def safe_sqrt(x):
    """sqrt(x) for x >= 0 with value 0 and gradient 0 (instead of inf/NaN) where x ≈ 0.

    sqrt is evaluated on max(x, floor), so even the branch that `where` discards has a
    finite derivative (0 · inf would be NaN); one (B, B) temporary fewer than a double where.
    """
    return ops.where(x > _SQRT_FLOOR, ops.sqrt(ops.maximum(x, _SQRT_FLOOR)), 0.0)
