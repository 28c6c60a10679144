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
        # A boolean eye (B² bytes) rather than a float one (4·B²): peak memory matters at large B.
        return ops.where(ops.eye(ops.shape(d)[0], dtype="bool"), 0.0, d)
    return _euclidean(x, squared=distance == "squared")


def _euclidean_value(x, squared):
    """(B, B) ‖a − b‖ (or ‖a − b‖²) from the Gram matrix, zero diagonal; no gradient."""
    squared_norms = ops.sum(ops.square(x), axis=1)
    gram = ops.matmul(x, ops.transpose(x))
    # ‖a‖² + ‖b‖² − 2a·b can come out slightly negative from rounding: clamp at 0.
    d = ops.maximum(squared_norms[:, None] + squared_norms[None, :] - 2.0 * gram, 0.0)
    if not squared:
        d = safe_sqrt(d)
    return ops.where(ops.eye(ops.shape(d)[0], dtype="bool"), 0.0, d)


def _euclidean(x, squared):
    """Euclidean or squared distances as one op whose backward pass keeps x and d only.

    Autodiff through `_euclidean_value` keeps about nine (B, B) float32 arrays for the
    backward pass (gram, −2·gram, the sums, maximum, the sqrt floor, the where masks): ~580 MiB
    at B = 4096 in eager TensorFlow, where the tape holds them until `tape.gradient`. The
    gradient written out needs only d, which the caller holds anyway.

    Gradient (g = ∂L/∂d, n_i = ‖x_i‖², s_ij = n_i + n_j − 2·x_i·x_j, d_ij = f(s_ij)):
        S_ij = ∂L/∂s_ij = g_ij · f'(s_ij), f'(s) = 1/(2·d_ij) (euclidean) or 1 (squared)
            where d_ij > 0, and 0 where d_ij = 0: the diagonal, s below the sqrt floor or
            clamped at 0; that is the gradient the masked expression's autodiff gives, so
            identical embeddings get a 0 (not NaN) gradient from their pair.
        ∂s_ij/∂x_k = 2·x_k·(δ_ik + δ_jk) − 2·(δ_ik·x_j + δ_jk·x_i), hence
        ∂L/∂x_k = 2·(r_k·x_k − (M·x)_k), M = S + Sᵀ, r_k = Σ_j M_kj.
    M·x = S·x + (xᵀ·S)ᵀ: two (B, B)×(B, D) matmuls and no transposed (B, B) copy; the
    backward pass's (B, B) temporaries are g, S and the quotient that builds S.
    """

    @ops.custom_gradient
    def distances(emb):
        # stop_gradient: TensorFlow's eager tape would otherwise record (and keep) every
        # op in here, as it does outside.
        e = ops.stop_gradient(emb)
        d = _euclidean_value(e, squared)
        # A detached handle on the output (same buffer): torch would otherwise hold the
        # output's own tensor in its grad_fn's closure, a cycle that outlives the step.
        kept = ops.stop_gradient(d)

        def grad(*args, upstream=None):
            if upstream is None:  # TensorFlow and JAX pass it positionally
                (upstream,) = args
            positive = kept > 0.0
            if squared:
                s = ops.where(positive, upstream, 0.0)
            else:
                # 2·d is 0 exactly where `positive` is False; the where drops those quotients.
                s = ops.where(positive, upstream / (2.0 * kept), 0.0)
            r = ops.sum(s, axis=1) + ops.sum(s, axis=0)  # (B,) row sums of M = S + Sᵀ
            mx = ops.matmul(s, e) + ops.transpose(ops.matmul(ops.transpose(e), s))  # (B, D)
            return 2.0 * (r[:, None] * e - mx)

        return d, grad

    return distances(x)


def safe_sqrt(x):
    """sqrt(x) for x >= 0 with value 0 and gradient 0 (instead of inf/NaN) where x ≈ 0.

    sqrt is evaluated on max(x, floor), so even the branch that `where` discards has a
    finite derivative (0 · inf would be NaN); one (B, B) temporary fewer than a double where.
    """
    return ops.where(x > _SQRT_FLOOR, ops.sqrt(ops.maximum(x, _SQRT_FLOOR)), 0.0)
