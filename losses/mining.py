"""Triplet mining on a (B, B) distance matrix in O(B²) memory.

A triplet (a, p, n) has a != p with the same label and n with another label; its
argument is x = d(a, p) − d(a, n). Every function here returns arrays indexed by anchor
(B,) or by anchor–positive pair (B, B), never by triplet (B, B, B): at B = 512 a float32
B³ tensor is 512 MB, at B = 4096 it is 256 GB.

The trick used by semi-hard and batch-all: sort each anchor's negative distances once
(B log B per row), then a batched binary search answers "how many negatives of anchor a
are closer than t" for all B² pairs at once in floor(log2(B)) + 1 vectorised steps.
Semi-hard mining runs that sort and search on blocks of anchors (`SEMI_HARD_CHUNK`), so
its temporaries are chunk × B instead of B × B; `semi_hard_hinge` also sums the hinge
terms block by block, so the loss's (B, B) terms never exist at once.
"""

from keras import ops

from ._chunks import map_row_chunks


def take_rows(x, index):
    """out[a, j] = x[a, index[a, j]] for (B, M) x and (B, Q) int32 index.

    Same as `ops.take_along_axis(x, index, axis=1)`, written as a 1-D gather on the
    flattened matrix with int32 row offsets, which avoids the int64 widening and
    broadcasting of indices in Keras's TensorFlow take_along_axis (one (B, Q) int32
    temporary instead).
    """
    offsets = ops.arange(ops.shape(x)[0], dtype="int32")[:, None] * ops.shape(x)[1]
    return ops.take(ops.reshape(x, (-1,)), index + offsets)


def sorted_negatives(d, negative):
    """Each anchor's negatives sorted by distance, nearest first.

    Returns:
        order: (B, B) int, column indices; the first n_neg[a] entries of row a are its
            negatives in ascending distance, the rest (non-negatives, at +inf) follow.
        sorted_d: (B, B) the distances in that order, +inf past n_neg[a]. Used only for
            comparisons (no gradient needed through it).
        n_neg: (B,) int32 number of negatives per anchor.
    """
    masked = ops.where(negative, ops.stop_gradient(d), float("inf"))
    order = ops.cast(ops.argsort(masked, axis=1), "int32")
    sorted_d = take_rows(masked, order)
    return order, sorted_d, ops.sum(ops.cast(negative, "int32"), axis=1)


def count_below(sorted_rows, queries, inclusive):
    """Batched searchsorted: out[a, q] = #{j : sorted_rows[a, j] < queries[a, q]}
    (or <= when `inclusive`).

    Args:
        sorted_rows: (B, M) ascending along each row (+inf padding allowed).
        queries: (B, Q).

    Returns:
        (B, Q) int32 counts in [0, M]. Branchless binary search: the step halves from the
        largest power of two <= M down to 1, one (B, Q) gather per step, so
        floor(log2(M)) + 1 steps (31, enough for any int32 M, when M is unknown at trace
        time). The search runs on positions in the flattened rows (row offset included),
        so a step is five (B, Q) operations (add, clamp, gather, compare, select) and
        only three (B, Q) arrays are live per step, which bounds the peak memory.
    """
    m = sorted_rows.shape[1]
    steps = 31 if m is None else max(1, int(m).bit_length())
    m_dyn = ops.shape(sorted_rows)[1]
    flat = ops.reshape(sorted_rows, (-1,))
    start = ops.arange(ops.shape(sorted_rows)[0], dtype="int32")[:, None] * m_dyn  # (B, 1)
    last = start + (m_dyn - 1)  # flat position of each row's last entry
    # `at` = flat position of the last entry known to be below the query (start − 1: none).
    at = ops.zeros_like(queries, dtype="int32") + (start - 1)
    for k in reversed(range(steps)):
        candidate = ops.minimum(at + (1 << k), last)
        probe = ops.take(flat, candidate)
        below = (probe <= queries) if inclusive else (probe < queries)
        at = ops.where(below, candidate, at)
    return at + 1 - start


# Anchors per block in semi-hard mining. A block's sort and binary search keep about ten
# (rows, B) temporaries alive: ~80 MB at 512 rows and B = 4096. Read at call time (the
# tests shrink it to exercise the loop on small batches).
SEMI_HARD_CHUNK = 512


def semi_hard(d, positive, negative):
    """FaceNet semi-hard negatives for every anchor–positive pair, as a (B, B) x.

    n(a, p) = the nearest negative of a with d(a, n) > d(a, p); if there is none, the
    farthest negative of a. The choice of n needs no gradient and is made per anchor row,
    `SEMI_HARD_CHUNK` anchors at a time, by `_semi_hard_columns`. `TripletLoss` calls
    `semi_hard_hinge`, which never builds x for the whole batch; this is the same mining for
    a caller that wants x itself.

    Memory (B = 4096: one float32 (B, B) array is 64 MB): x is computed block by block
    inside a custom-gradient op that keeps only x and the chosen columns (int16 when
    B <= 32767: 32 MB). The backward pass scatters −upstream onto those columns, again
    block by block. Autodiff through a gather, `d − take_rows(d, columns)`, would keep a
    (B, B) int32 gather index for the backward pass and build d(a, n) as another (B, B)
    float32 array next to x and the int32 columns: ~190 MB more at the peak.

    Returns:
        x: (B, B) d(a, p) − d(a, n(a, p)), gradient flowing into both distances.
        valid: (B, B) bool, positive pairs whose anchor has at least one negative.
    """
    return _minus_semi_hard_negative(d, negative), _valid_pairs(positive, negative)


def semi_hard_hinge(d, positive, negative, margin, soft=False):
    """Per-anchor sums of the semi-hard triplet terms, with no (B, B) array of them.

    h(x) = max(x + margin, 0), or softplus(x) when `soft`, for x(a, p) = d(a, p) −
    d(a, n(a, p)) with the negatives of `semi_hard`. x, h and their masks exist only for one
    block of `SEMI_HARD_CHUNK` anchors at a time, inside a custom-gradient op whose backward
    pass keeps d (held by the caller anyway), `valid` (bool) and the chosen columns (int16
    when B <= 32767): 48 MB at B = 4096, against ~4 float32 (B, B) arrays (256 MB) that
    autodiff of x → h → where → sum keeps in eager mode, plus their temporaries.

    Gradient, per block (recomputing x from d and the columns, one gather): with
    w(a, p) = ∂L/∂per_anchor[a] · h'(x(a, p)) on valid pairs (h' = [x + margin > 0], the
    hinge's autodiff convention at 0, or sigmoid(x)), ∂L/∂d(a, p) gets +w(a, p) and
    ∂L/∂d(a, n(a, p)) gets −w(a, p) (`_minus_scattered`).

    Args:
        d: (B, B) distances.
        positive, negative: (B, B) bool pair masks.
        margin: the hinge margin; with `soft`, it only defines `n_active`.
        soft: softplus instead of the hinge.

    Returns:
        per_anchor: (B,) Σ_p h(x(a, p)) over valid pairs (a, p).
        n_active: (B,) int32 number of valid pairs of a with x + margin > 0.
        valid: (B, B) bool, as in `semi_hard`.
    """
    valid = _valid_pairs(positive, negative)
    index_dtype = _index_dtype(d)

    def block(blocks):
        dist, neg, ok = blocks
        columns = _semi_hard_columns(dist, neg)
        x = dist - take_rows(dist, columns)
        shifted = x + margin
        h = ops.softplus(x) if soft else ops.relu(shifted)
        sums = ops.sum(ops.where(ok, h, 0.0), axis=1)
        active = ops.sum(ops.cast(ops.logical_and(ok, shifted > 0), dist.dtype), axis=1)
        return columns, ops.stack([sums, active], axis=1)

    def block_grad(blocks):
        dist, columns, ok, up = blocks  # up: (c, 1) ∂L/∂per_anchor
        x = dist - take_rows(dist, ops.cast(columns, "int32"))
        if soft:
            w = ops.where(ok, up * ops.sigmoid(x), 0.0)
        else:
            w = ops.where(ops.logical_and(ok, x + margin > 0), up, 0.0)
        return _minus_scattered((w, columns))

    @ops.custom_gradient
    def per_anchor(dist):
        kept = ops.stop_gradient(dist)
        # One differentiable (B, 2) output, [sum, active count] per anchor (counts <= B are
        # exact in float32): torch's custom gradient takes a single upstream gradient.
        columns, summary = map_row_chunks(
            block, (kept, negative, valid), SEMI_HARD_CHUNK,
            dtype=(index_dtype, dist.dtype), widths=(None, 2),
        )

        def grad(*args, upstream=None):
            if upstream is None:  # TensorFlow and JAX pass it positionally
                (upstream,) = args
            return map_row_chunks(
                block_grad, (kept, columns, valid, upstream[:, :1]), SEMI_HARD_CHUNK,
                dtype=upstream.dtype,
            )

        return summary, grad

    summary = per_anchor(d)
    return summary[:, 0], ops.cast(summary[:, 1], "int32"), valid


def _valid_pairs(positive, negative):
    """Positive pairs whose anchor has at least one negative: (B, B) bool."""
    return ops.logical_and(positive, ops.any(negative, axis=1)[:, None])


def _index_dtype(d):
    """int16 columns (half the memory of int32) when every column index fits."""
    width = d.shape[1]
    return "int16" if width is not None and width <= 32767 else "int32"


def _minus_semi_hard_negative(d, negative):
    """x = d − d[a, n(a, p)] for every (a, p), with exactly that expression's gradient:
    ∂x(a, p)/∂d(a, p) = 1 and ∂x(a, p)/∂d(a, n(a, p)) = −1."""

    @ops.custom_gradient
    def minus_negative(dist):
        x, columns = map_row_chunks(
            _semi_hard_block, (ops.stop_gradient(dist), negative), SEMI_HARD_CHUNK,
            dtype=(dist.dtype, _index_dtype(d)),
        )

        def grad(*args, upstream=None):
            if upstream is None:  # TensorFlow and JAX pass it positionally
                (upstream,) = args
            return map_row_chunks(
                _minus_scattered, (upstream, columns), SEMI_HARD_CHUNK, dtype=upstream.dtype
            )

        return x, grad

    return minus_negative(d)


def _semi_hard_columns(d, negative):
    """The column of n(a, p) for each (a, p) of a block of anchor rows.

    Args:
        d, negative: (c, B) distances (no gradient) and the negative mask.

    Returns:
        (c, B) int32; an arbitrary valid column where a has no negative or p is not a
        positive of a (the callers mask those entries out).
    """
    order, sorted_d, n_neg = sorted_negatives(d, negative)
    n_closer = count_below(sorted_d, d, inclusive=True)
    farthest = ops.maximum(n_neg - 1, 0)[:, None]
    pick = ops.where(n_closer < n_neg[:, None], n_closer, farthest)
    return take_rows(order, pick)


def _semi_hard_block(blocks):
    """x = d(a, p) − d(a, n(a, p)) and the columns of n(a, p) for a block of anchor rows,
    blocks = (d, negative), each (c, B)."""
    d, negative = blocks
    columns = _semi_hard_columns(d, negative)
    return d - take_rows(d, columns), columns


def _minus_scattered(blocks):
    """upstream − (upstream scattered onto the chosen columns), for a block of rows: the
    gradient of x = d − d[a, columns[a, p]] with respect to d.

    Args:
        blocks: (upstream, columns), each (c, B): ∂loss/∂x and the columns of n(a, p).
    """
    upstream, columns = blocks
    rows, width = ops.shape(upstream)[0], ops.shape(upstream)[1]
    ids = ops.cast(columns, "int32") + ops.arange(rows, dtype="int32")[:, None] * width
    onto = ops.segment_sum(ops.reshape(upstream, (-1,)), ops.reshape(ids, (-1,)), rows * width)
    return upstream - ops.reshape(onto, (rows, width))


def batch_hard(d, positive, negative):
    """Batch-hard: the farthest positive and the nearest negative of every anchor.

    Returns:
        x: (B,) max_p d(a, p) − min_n d(a, n).
        valid: (B,) bool, anchors with >= 1 positive and >= 1 negative.
    """
    hardest_pos = ops.max(ops.where(positive, d, 0.0), axis=1)
    # A finite filler (not inf) keeps invalid rows free of inf − inf.
    filler = ops.stop_gradient(ops.max(d)) + 1.0
    hardest_neg = ops.min(ops.where(negative, d, filler), axis=1)
    valid = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
    return hardest_pos - hardest_neg, valid


def batch_all_hinge(d, positive, negative, margin):
    """Batch-all hinge sums without enumerating triplets.

    For a pair (a, p) with t = d(a, p) + margin, the active negatives are those with
    d(a, n) < t, and Σ_n max(t − d(a, n), 0) = k·t − (sum of the k smallest negative
    distances), k = their count: one binary search and one prefix sum per pair.

    Returns:
        hinge: (B, B) Σ_n max(d(a,p) − d(a,n) + margin, 0) over negatives, 0 off valid pairs.
        n_active: (B, B) int32 number of negatives with a non-zero hinge, 0 off valid pairs.
    """
    order, sorted_d, _ = sorted_negatives(d, negative)
    threshold = d + margin
    n_active = count_below(sorted_d, ops.stop_gradient(threshold), inclusive=False)
    n_active = ops.where(positive, n_active, 0)
    # Prefix sums of the sorted negative distances, taken from d so gradients flow back.
    # Entries past n_neg are non-negatives, but n_active <= n_neg never reaches them.
    prefix = ops.cumsum(take_rows(d, order), axis=1)
    prefix = ops.concatenate([ops.zeros_like(prefix[:, :1]), prefix], axis=1)
    nearest_sum = take_rows(prefix, n_active)
    hinge = ops.cast(n_active, d.dtype) * threshold - nearest_sum
    return ops.where(positive, hinge, 0.0), n_active


def batch_all_soft(d, positive, negative):
    """Σ_{p, n} softplus(d(a, p) − d(a, n)) per anchor, in O(B²) memory.

    Softplus does not split into sorted prefix sums, so each anchor's (B, B) block of
    (p, n) terms is computed in a loop (`ops.map`, B steps) and thrown away. Autodiff
    through the loop would keep every block for the backward pass (B³ memory), so the
    gradient is written out: d/d d(a,p) = Σ_n σ(x), d/d d(a,n) = −Σ_p σ(x), recomputed
    row by row the same way. Time O(B³) either way.

    Returns:
        (B,) per-anchor sums (0 for anchors without a valid triplet).
    """
    pos = ops.cast(positive, d.dtype)
    neg = ops.cast(negative, d.dtype)

    def block(row, pos_row, neg_row):
        x = row[:, None] - row[None, :]  # (p, n)
        return x, pos_row[:, None] * neg_row[None, :]

    def row_value(args):
        x, weight = block(*args)
        return ops.sum(weight * ops.softplus(x))

    def row_grad(args):
        x, weight = block(*args)
        s = weight * ops.sigmoid(x)
        return ops.sum(s, axis=1) - ops.sum(s, axis=0)

    @ops.custom_gradient
    def per_anchor(dist, pos_mask, neg_mask):
        value = ops.map(row_value, (dist, pos_mask, neg_mask))

        def grad(*args, upstream=None):
            if upstream is None:  # TensorFlow and JAX pass it positionally
                (upstream,) = args
            g = ops.map(row_grad, (dist, pos_mask, neg_mask)) * upstream[:, None]
            return g, ops.zeros_like(pos_mask), ops.zeros_like(neg_mask)

        return value, grad

    return per_anchor(d, pos, neg)
