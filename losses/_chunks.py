"""Row-block loop: bound the peak memory of a row-wise (B, M) computation to chunk × M."""

from keras import ops


def map_row_chunks(fn, arrays, chunk, dtype="int32"):
    """`fn` applied to `chunk` rows of `arrays` at a time, the blocks stacked back to (B, M).

    Args:
        fn: maps a tuple of (chunk, M) row blocks, one per input, to a (chunk, M) array of
            `dtype`. It must treat every row independently (a sort or a search per row),
            so splitting the rows into blocks does not change the result.
        arrays: tuple of (B, M) arrays sharing the row count B (B may be unknown at trace
            time, as in `fit` with a smaller last batch).
        chunk: rows per block.
        dtype: dtype of `fn`'s output.

    Returns:
        (B, M) array of `dtype`, equal to `fn(arrays)`.

    Cost: the same arithmetic as one call on all rows, plus one (chunk, M) gather per input
    and block, but only one block's temporaries are alive at a time. `ops.scan` is the loop
    that guarantees this on every backend: TensorFlow runs it as a while_loop with
    parallel_iterations=1 (`ops.map` would allow 10 blocks at once), JAX as lax.scan, torch
    as a Python loop. The output is built from the stacked blocks, so it is not
    differentiable: use it for indices and masks, and gather the values afterwards.
    """
    rows = arrays[0].shape[0]
    if rows is not None and rows <= chunk:
        return fn(arrays)
    n_rows = ops.shape(arrays[0])[0]
    width = ops.shape(arrays[0])[1]
    # B unknown at trace time (TensorFlow only; JAX and torch shapes are concrete): a
    # batch smaller than `chunk` must not be padded up to `chunk` rows.
    size = chunk if rows is not None else ops.minimum(chunk, n_rows)
    n_blocks = (n_rows + size - 1) // size

    def step(_, block):
        # The last block is padded by repeating row B − 1; its extra rows are cut below.
        ids = ops.minimum(block * size + ops.arange(size, dtype="int32"), n_rows - 1)
        out = fn(tuple(ops.take(a, ids, axis=0) for a in arrays))
        # Keras's TensorFlow scan stacks outputs with the carry's shape and dtype, so the
        # block doubles as the (otherwise unused) carry.
        return out, out

    init = ops.zeros((size, width), dtype)
    _, blocks = ops.scan(step, init, ops.arange(n_blocks, dtype="int32"))
    return ops.reshape(blocks, (-1, width))[:n_rows]
