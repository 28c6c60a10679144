"""Compiled loops of `training.metrics.retrieval`: the cut of a tile and the scores of
ranked rows.

Hand-written with Numba because NumPy has no fused form of either. On one core, for the
16k × 16k case of benchmarks/retrieval.py (100 classes, ~300 survivors a row): the cut as
NumPy's compare + flatnonzero (~21 ns per survivor, a branch per kept entry) + gather +
pack took 0.19 s, this one pass over each tile 0.13 s; the scores as NumPy array passes
0.07 s, these loops 0.015 s. Both release the GIL (``nogil``), so the thread pool of
`retrieval_metrics` runs them on all cores; ``cache`` keeps the machine code on disk after
the first call (~2 s to compile, ~0.15 s to load in a new process).
"""

from __future__ import annotations

import numba
import numpy as np

_SIGN = np.uint64(1 << 31)
_LOW32 = np.uint64(0xFFFFFFFF)


@numba.njit(nogil=True, cache=True)
def cut_tile(tile, bits, bound, own, c0, column_bits, out, end, kept):
    """Append the entries of one float32 tile at or below their row's bound to ``out``.

    Args:
        tile: (B, W) float32 distances of B queries to columns c0 … c0 + W − 1; the query's
            own column (``own`` − c0, when inside the tile) is set to NaN, never kept.
        bits: the same memory as uint32 (``tile.view(np.uint32)``).
        bound: (B,) float32; +inf keeps the whole row.
        own: (B,) int64 column of each query itself.
        c0: first column of the tile; column_bits: bits of a column index.
        out: uint64 survivors, each (row << (32 + column_bits)) | (order key of the
            distance << column_bits) | column: sorted, they rank each row's columns by
            distance, ties by column.
        end: how many of ``out`` are filled.
        kept: (B,) int64 survivors of each row so far, updated.

    Returns:
        The new end. Past ``out.size`` nothing is written: call again with a larger
        ``out`` and ``kept`` as they were before (the NaN entries are already set, so a
        second call keeps the same).
    """
    rows, width = tile.shape
    size = out.size
    shift = np.uint64(column_bits)
    for i in range(rows):
        row = tile[i]
        row_bits = bits[i]
        col = own[i] - c0
        if 0 <= col < width:
            row[col] = np.nan
        limit = bound[i]
        high = np.uint64(i) << np.uint64(32 + column_bits)
        first = end
        for j in range(width):
            if row[j] <= limit:  # NaN: never
                x = np.uint64(row_bits[j])
                if row[j] == 0.0:
                    x = np.uint64(0)  # −0.0 ranks with +0.0
                # Order key: flip all bits of a negative float, only the sign of the rest.
                key = x ^ _LOW32 if x & _SIGN else x ^ _SIGN
                if end < size:
                    out[end] = high | (key << shift) | np.uint64(c0 + j)
                end += 1
        kept[i] += end - first
    return end


@numba.njit(nogil=True, cache=True)
def ranked_scores(cols, starts, kept, need, labels, r, inverse, k):
    """Sums of P@1, recall@k, R-precision and AP@R over rows of ranked columns.

    Args:
        cols: ranked columns, row after row, nearest first.
        starts, kept, need, labels, r: (rows,) where each row starts in ``cols``, how many
            columns it has there, its m (the entries it ranks; fewer when it has fewer: a
            column at a NaN distance is never kept, so never retrieved), its class id and
            its R.
        inverse: (N,) class id of every column; k: cut-off of recall@k.
    """
    p1 = recall = r_precision = map_r = 0.0
    for i in range(need.size):
        start, label, positives = starts[i], labels[i], r[i]
        hits, precision_sum, found = 0, 0.0, False
        for rank in range(min(need[i], kept[i])):
            if inverse[cols[start + rank]] == label:
                if rank == 0:
                    p1 += 1.0
                if rank < k:
                    found = True
                if rank < positives:
                    hits += 1
                    precision_sum += hits / (rank + 1.0)
        if found:
            recall += 1.0
        r_precision += hits / positives
        map_r += precision_sum / positives
    return np.array([p1, recall, r_precision, map_r])
