"""Row-block loop: bound the peak memory of a row-wise (B, M) computation to chunk × M."""

from keras import ops


def map_row_chunks(fn, arrays, chunk, dtype="int32", widths=None):
    """`fn` applied to `chunk` rows of `arrays` at a time, the blocks stacked back to (B, M).

    Args:
        fn: maps a tuple of row blocks, one per input, to a (chunk, M) array of `dtype`
            (or, when `dtype` is a tuple, a tuple of such arrays, one per dtype).
            It must treat every row independently (a sort or a search per row), so
            splitting the rows into blocks does not change the result.
        arrays: tuple of arrays sharing the row count B (B may be unknown at trace
            time, as in `fit` with a smaller last batch); the first is (B, M), the others
            may have other widths (a (B, 1) column of per-row factors, say).
        chunk: rows per block.
        dtype: dtype of `fn`'s output, or a tuple of dtypes for several outputs.
        widths: with a tuple `dtype`, a tuple of output widths, one per output (None
            means M): per-row summaries such as (chunk, 2) sums and counts.

    Returns:
        (B, M) array of `dtype` (a tuple of them for a tuple of dtypes; (B, width) where
        `widths` names one), equal to `fn(arrays)`.

    Cost: the same arithmetic as one call on all rows, plus one (chunk, M) gather per input
    and block, but only one block's temporaries are alive at a time. `ops.scan` is the loop
    that guarantees this on every backend: TensorFlow runs it as a while_loop with
    parallel_iterations=1 (`ops.map` would allow 10 blocks at once), JAX as lax.scan, torch
    as a Python loop. The output is built from the stacked blocks, so it is not
    differentiable: use it for indices and masks and gather the values afterwards, or
    inside a custom gradient (as `mining.semi_hard_hinge` does). A batch that is a whole number
    of blocks is returned without the copy that cutting the padded rows would make.
    """
    several = isinstance(dtype, tuple)

    def typed(out):
        if several:
            return tuple(ops.cast(o, t) for o, t in zip(out, dtype, strict=True))
        return ops.cast(out, dtype)

    rows = arrays[0].shape[0]
    if rows is not None and rows <= chunk:
        return typed(fn(arrays))
    n_rows = ops.shape(arrays[0])[0]
    width = ops.shape(arrays[0])[1]
    # B unknown at trace time (TensorFlow only; JAX and torch shapes are concrete): a
    # batch smaller than `chunk` must not be padded up to `chunk` rows.
    size = chunk if rows is not None else ops.minimum(chunk, n_rows)
    n_blocks = (n_rows + size - 1) // size

    def step(_, block):
        # The last block is padded by repeating row B − 1; its extra rows are cut below.
        ids = ops.minimum(block * size + ops.arange(size, dtype="int32"), n_rows - 1)
        out = typed(fn(tuple(ops.take(a, ids, axis=0) for a in arrays)))
        # Keras's TensorFlow scan stacks outputs with the carry's shape and dtype, so the
        # block doubles as the (otherwise unused) carry.
        return out, out

    dtypes = dtype if several else (dtype,)
    out_widths = [width if w is None else w for w in (widths or (None,) * len(dtypes))]
    init = tuple(ops.zeros((size, w), t) for w, t in zip(out_widths, dtypes, strict=True))
    _, blocks = ops.scan(step, init if several else init[0], ops.arange(n_blocks, dtype="int32"))
    exact = rows is not None and rows % size == 0  # no padded rows to cut: skip a copy
    outputs = tuple(
        ops.reshape(b, (-1, w)) if exact else ops.reshape(b, (-1, w))[:n_rows]
        for b, w in zip(blocks if several else (blocks,), out_widths, strict=True)
    )
    return outputs if several else outputs[0]
