"""Leave-one-out retrieval scores, exact at dataset scale: precision@1, recall@k, R-precision
and MAP@R.

Retrieval follows pytorch-metric-learning's AccuracyCalculator (see ../shared/REFERENCES.md):
every item queries all others (itself excluded); R = number of other items of its class;
queries with R = 0 are skipped. Neighbours are ranked by euclidean distance on the given
embeddings (for unit-norm embeddings the same order as cosine similarity).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from training.metrics import retrieval_kernels

# Rows needing more than this share of their columns skip the cut: it would keep most of
# the row anyway.
_DENSE_SHARE = 0.25
# Distances are made and cut one tile (a block's rows × some columns) at a time, so the cut
# reads the tile from cache and no block-sized buffer is held: a whole block row spills to
# memory, and the matmul writing it ran 1.45 ns an entry against 1.22 for 1 MiB tiles
# (512 queries, D = 64, one core).
_TILE_BYTES = 1 << 20
# Survivors of one block (8 bytes each) wait for their sort; rows that keep many columns
# (R near N/4, or whole rows) get smaller blocks.
_BLOCK_SURVIVORS = 1 << 23


def _check_retrieval_inputs(embeddings, labels, k: int, chunk_size: int):
    x = np.asarray(embeddings)
    y = np.asarray(labels).reshape(-1)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(
            f"embeddings must be (N, D) and labels (N,); got {x.shape} and {np.shape(labels)}"
        )
    for name, value in (("k", k), ("chunk_size", chunk_size)):
        if not (isinstance(value, (int, np.integer)) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    # float64 in → float64 distances; anything else float32 (BLAS sgemm, half the memory).
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    return x.astype(dtype, copy=False), y


def retrieval_metrics(embeddings, labels, *, k: int = 5, chunk_size: int = 1024) -> dict:
    """Leave-one-out retrieval scores, with at most ``chunk_size`` queries in flight.

    For a query q with R other items of its class and rel(i) = 1 when the i-th nearest
    other item shares q's class:
        precision_at_1 = rel(1)
        recall_at_k    = 1 if any rel(i), i <= k
        r_precision    = (1/R) Σ_{i<=R} rel(i)
        map_at_r       = (1/R) Σ_{i<=R} P(i)·rel(i),  P(i) = (1/i) Σ_{j<=i} rel(j)
    each averaged over the queries with R >= 1 (an item alone in its class is never a
    query, but is still a neighbour of the others).

    Ties: items at exactly the same distance from a query rank by index, lower first.
    Only a tie between an item of the query's class and one of another class changes a
    score; float32 distances among 16k items tie exactly about once per hundred queries.

    Exact, not approximate: each query needs its m = min(N − 1, max(R, k)) nearest, in
    order, and gets exactly them however large m is. `_Retrieval.cut_scores` says how
    (a cut of each row at a sampled bound, tile by tile as the matmul makes it, then one
    sort of the survivors). When m is over a quarter of N (R ≈ N/2 for 2 classes) the cut
    would keep most of each row, so it is skipped and whole rows are sorted, still exact.

    Cost: the O(N²·D) matmul plus O(N·m) for the survivors, on all CPUs (blocks of
    ceil(chunk_size / CPUs) queries, one per thread, BLAS single-threaded inside).
    Memory per thread: one tile (1 MiB of distances) and the block's
    survivors (8 bytes each, ~1.2·m to 2·m per query, N − 1 when rows are sorted whole;
    at most 64 MiB, by shrinking the block). Measured on 2 cores, D = 64, against
    scikit-learn's brute-force kneighbors (benchmarks/retrieval.py, `make bench`): N = 16k
    in 0.30 s with 100 classes (0.33× scikit-learn) and 0.70 s with 10 (0.17×); N = 70k in
    5.6 s (0.23×, peak 60 MB) and 11.3 s (0.08×, peak 305 MB).

    Args:
        embeddings: (N, D) float array; float64 is ranked in float64, anything else in
            float32.
        labels: (N,) integer class labels (any values).
        k: cut-off of recall@k; the key is ``f"recall_at_{k}"``.
        chunk_size: queries in flight, over all threads.

    Returns:
        {"precision_at_1", f"recall_at_{k}", "r_precision", "map_at_r"}: Python floats.

    Raises:
        ValueError: bad shapes, or no query has another item of its class.
    """
    x, y = _check_retrieval_inputs(embeddings, labels, k, chunk_size)
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    r_all = counts[inverse] - 1  # (N,) other items of each query's class
    valid = np.flatnonzero(r_all > 0)
    if valid.size == 0:
        raise ValueError("no query has another item of its class; retrieval is undefined")
    n = len(x)
    need = np.minimum(np.maximum(r_all, k), n - 1)  # (N,) ranked neighbours each query needs
    # Queries by increasing R (then class, then index): the rows of a block need about
    # the same number of neighbours, so one sample size fits them all.
    queries = valid[np.lexsort((inverse[valid], r_all[valid]))]
    # ‖q − x‖² = ‖q‖² + (‖x‖² − 2 q·x). ‖q‖² is constant along a query's row, so ranking
    # needs only the bracket, which one matmul of augmented vectors gives with no extra
    # pass over the tile: [x, ‖x‖²] · [−2q, 1].
    items_t = np.empty((x.shape[1] + 1, n), x.dtype)  # (D+1, N)
    items_t[:-1] = x.T
    items_t[-1] = np.einsum("ij,ij->i", x, x)
    setup = _Retrieval(x, items_t, inverse, r_all, need, k)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = max(1, min(cpus or 1, chunk_size, queries.size // 64))
    blocks = _blocks(queries, need[queries], n, -(-chunk_size // workers))
    if workers > 1:
        # NumPy releases the GIL in the matmul, comparisons and sorts: one block per
        # thread, BLAS single-threaded inside, puts every core on all of the work.
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
            scores = list(pool.map(setup.block_scores, blocks))
    else:
        scores = [setup.block_scores(q) for q in blocks]
    p1, rk, rp, mapr = (np.sum(scores, axis=0) / valid.size).tolist()  # block order: fixed
    return {"precision_at_1": p1, f"recall_at_{k}": rk, "r_precision": rp, "map_at_r": mapr}


def _blocks(queries, need, n, rows):
    """Consecutive runs of ``queries`` (need non-decreasing along them) of at most ``rows``
    queries, fewer where their survivors (estimated 2·m + 64 a row, N for whole rows) would
    pass _BLOCK_SURVIVORS or their row ids the bits that the sort keys leave them."""
    estimate = _survivor_estimate(need, n)
    rows = min(rows, 1 << (32 - _column_bits(n)))
    blocks, start = [], 0
    while start < queries.size:
        last = min(start + rows, queries.size) - 1
        size = min(rows, max(1, _BLOCK_SURVIVORS // int(estimate[last])))
        blocks.append(queries[start : start + size])
        start += size
    return blocks


def _survivor_estimate(need, n: int):
    """Survivors expected of rows needing ``need`` of ``n`` columns at the first cut: about
    2·m + 64 (`_cut_bounds`), all n for rows sorted whole."""
    return np.where(need > _DENSE_SHARE * n, n, np.minimum(n, 2 * need + 64))


def _column_bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


class _Retrieval:
    """What every block of queries reads: embeddings, augmented items (D+1, N), labels
    as class ids, R, m, k. Per-thread tile buffers live in `self.local`."""

    def __init__(self, x, items_t, inverse, r_all, need, k):
        self.x, self.items_t, self.inverse = x, items_t, inverse
        self.r_all, self.need, self.k = r_all, need, k
        self.local = threading.local()
        self.column_bits = _column_bits(items_t.shape[1])

    def buffer(self, size: int) -> np.ndarray:
        """Flat distance buffer of this thread, reused across tiles and blocks: fresh
        arrays would cost page faults on every tile."""
        buf = getattr(self.local, "buf", None)
        if buf is None or buf.size < size:
            buf = np.empty(size, self.x.dtype)
            self.local.buf = buf
        return buf

    def augmented(self, q: np.ndarray) -> np.ndarray:
        """(B, D+1) [−2q, 1] of the queries ``q``: times the items, the bracket."""
        return np.concatenate([-2.0 * self.x[q], np.ones((q.size, 1), self.x.dtype)], axis=1)

    def bounds(self, queries, q, need) -> list:
        """The cuts each row tries in turn (`_cut_bounds`); [+inf] when a row is sorted
        whole."""
        if need.max() > _DENSE_SHARE * self.items_t.shape[1]:
            return [np.full(q.size, np.inf, self.x.dtype)]
        return _cut_bounds(queries, self.items_t, q, need)

    def block_scores(self, q: np.ndarray) -> np.ndarray:
        """Sums over the queries ``q`` (B,) of P@1, recall@k, R-precision and AP@R."""
        queries, need = self.augmented(q), self.need[q]
        return self.cut_scores(queries, q, need, self.bounds(queries, q, need))

    def cut_scores(self, queries, q, need, bounds) -> np.ndarray:
        """Scores of the rows ``q`` cut at ``bounds[0]``.

        1. Survivors: each row keeps its columns at or below its bound, tile by tile as
           the matmul makes them (`packed_survivors`, `survivors_float64`).
        2. A row that keeps fewer than its m columns is left out of the scores here and
           cut again at a looser bound (``bounds[1:]``, the last +inf: the whole row), so
           the bounds affect the time only, never the result.
        3. The survivors are sorted by (row, distance, column), so ties go to the lower
           index, and the first m of each row are scored (`retrieval_kernels`).
        """
        if self.x.dtype == np.float32:
            packed, kept = self.packed_survivors(queries, q, bounds[0])
            packed.sort()  # by row, distance, column: one sort (SIMD where NumPy has it)
            cols = (packed & np.uint64((1 << self.column_bits) - 1)).astype(np.intp)
        else:  # a float64 key fills 64 bits: stable by row, then distance; columns ascend
            keys, rows, cols = self.survivors_float64(queries, q, bounds[0])
            cols = cols[np.lexsort((keys, rows))]
            kept = np.bincount(rows, minlength=q.size)
        short = kept < need if len(bounds) > 1 else np.zeros(q.size, bool)
        starts = np.cumsum(kept) - kept
        done = np.flatnonzero(~short)
        labels = self.inverse[q[done]]
        total = retrieval_kernels.ranked_scores(
            cols, starts[done], kept[done], need[done], labels, self.r_all[q[done]],
            self.inverse, self.k,
        )
        if short.any():
            redo = [bound[short] for bound in bounds[1:]]
            total += self.cut_scores(queries[short], q[short], need[short], redo)
        return total

    def tiles(self, queries):
        """(first column, (B, W) distances) of each tile, a few hundred columns at a time,
        made by one matmul into this thread's buffer (overwritten by the next tile)."""
        b, n = len(queries), self.items_t.shape[1]
        width = int(min(n, max(64, _TILE_BYTES // (b * self.x.itemsize))))
        buf = self.buffer(b * width)
        for c0 in range(0, n, width):
            w = min(width, n - c0)
            tile = buf[: b * w].reshape(b, w)
            np.matmul(queries, self.items_t[:, c0 : c0 + w], out=tile)
            yield c0, tile

    def packed_survivors(self, queries, q, bound):
        """uint64 (row, order key of the distance, column) of the float32 entries of rows
        ``q`` at or below ``bound`` (`retrieval_kernels.cut_tile`), and (B,) their count
        per row."""
        n = self.items_t.shape[1]
        estimate = n if np.isinf(bound).any() else int(_survivor_estimate(self.need[q], n).max())
        out = np.empty(q.size * estimate, np.uint64)
        kept = np.zeros(q.size, np.int64)
        end = 0
        for c0, tile in self.tiles(queries):
            args = (tile, tile.view(np.uint32), bound, q, c0, self.column_bits)
            before = kept.copy()
            new_end = retrieval_kernels.cut_tile(*args, out, end, kept)
            if new_end > out.size:  # more survivors than estimated: grow and redo the tile
                out = np.concatenate([out[:end], np.empty(max(out.size, new_end), np.uint64)])
                kept = before
                new_end = retrieval_kernels.cut_tile(*args, out, end, kept)
            end = new_end
        return out[:end], kept

    def survivors_float64(self, queries, q, bound):
        """(order keys, rows, columns) of the float64 entries of rows ``q`` at or below
        ``bound``: per tile one comparison and one flatnonzero (the query's own column is
        NaN, never kept)."""
        pieces = []
        for c0, tile in self.tiles(queries):
            b, w = tile.shape
            own = np.flatnonzero((q >= c0) & (q < c0 + w))
            tile[own, q[own] - c0] = np.nan
            flat = np.flatnonzero(tile <= bound[:, None])
            rows, cols = np.divmod(flat, w)
            pieces.append((_order_keys(tile.reshape(-1)[flat]), rows, cols + c0))
        return tuple(np.concatenate(part) for part in zip(*pieces, strict=True))


def _cut_bounds(queries, items_t, q, need):
    """Per-row cuts to try in turn: [first, second, +inf], each (B,).

    A sample of S evenly spaced columns holds about e = S·m/N of the row's m nearest; its
    j-th smallest lies below the m-th smallest of the row only when the sample holds j
    of them. j = e + 2√e + 1 fails for ~2 % of the rows (binomial tail), which are cut
    again at j = e + 6√e + 6 (~1e-8), then kept whole. The first cut keeps about
    (N/S)·j = m + 2√(N·m/S) + N/S columns: a larger sample keeps fewer but costs its own
    matmul and sort, ~3 ns per sampled column against ~30 ns per survivor. S minimises
    the sum, over sizes a quarter-octave apart (S = 724 at m = 160 of N = 16k, e ≈ 7; 512
    at m = 5, e ≈ 0.16; 4,096 at m = 7,000 of 70k, e ≈ 410).
    """
    n = items_t.shape[1]
    m = int(need.max())
    sizes = np.unique(np.minimum(n, np.round(2.0 ** np.arange(4, 40, 0.25)))).astype(np.int64)
    cost = sizes + 10.0 * (2.0 * np.sqrt(n * m / sizes) + n / sizes)
    size = int(sizes[np.argmin(cost)])
    columns = np.arange(size) * n // size
    # Integer keys sort faster than floats (no NaN-aware comparisons).
    sample = _order_keys(queries @ items_t[:, columns])  # (B, S)
    own = np.searchsorted(columns, q)  # the query itself, if sampled: sorted last
    hit = own < size
    hit[hit] = columns[own[hit]] == q[hit]
    sample[np.flatnonzero(hit), own[hit]] = np.iinfo(sample.dtype).max
    sample.sort(axis=1)
    expected = size * need / n
    bounds = []
    for z, c in ((2.0, 1.0), (6.0, 6.0)):
        j = np.ceil(expected + z * np.sqrt(expected) + c).astype(np.int64)
        value = _order_values(sample[np.arange(len(q)), np.minimum(j, size) - 1])
        bounds.append(np.where(np.isnan(value) | (j > size), np.inf, value))
    return bounds + [np.full(len(q), np.inf)]


def _order_keys(values: np.ndarray) -> np.ndarray:
    """Unsigned integers in the order of the floats (a < b ⇔ key(a) < key(b); −0.0 and
    +0.0 equal). float32 → uint32, float64 → uint64. No NaN allowed."""
    if values.dtype == np.float32:
        signed, unsigned = np.int32, np.uint32
    else:
        signed, unsigned = np.int64, np.uint64
    bits = (values + values.dtype.type(0.0)).view(signed)
    flip = (bits >> (8 * values.dtype.itemsize - 1)).view(unsigned)  # all ones if negative
    flip |= unsigned(1) << unsigned(8 * values.dtype.itemsize - 1)
    return bits.view(unsigned) ^ flip


def _order_values(keys: np.ndarray) -> np.ndarray:
    """Inverse of `_order_keys` (the all-ones key, a NaN pattern, gives NaN)."""
    unsigned, floating = (np.uint32, np.float32) if keys.dtype == np.uint32 else (np.uint64, np.float64)
    sign = unsigned(1) << unsigned(8 * keys.itemsize - 1)
    bits = np.where(keys & sign, keys ^ sign, ~keys)
    return bits.view(floating)
