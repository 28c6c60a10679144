"""Evaluation metrics: leave-one-out retrieval, calibration and classification scores.

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
from sklearn import metrics as skm
from threadpoolctl import threadpool_limits


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

    Ties: items at exactly the same distance from a query rank by index, lower first (a
    stable sort of all others by distance). Only a tie between an item of the query's
    class and one of another class changes a score; float32 distances among 16k items
    tie exactly about once per hundred queries.

    Exact, not approximate: each query needs its m = min(N − 1, max(R, k)) nearest, in
    order, and gets exactly them however large m is. `_Retrieval.block_scores` says how
    (one matmul per block, a cut of each row at a sampled bound, a radix sort of the
    survivors). When m is over a quarter of N (R ≈ N/2 for 2 classes) the cut would keep
    most of each row, so it is skipped and whole rows are sorted: the same linear-time
    radix sort on N − 1 entries per query instead of ~1.2·m to 2·m, still exact.

    Cost: the O(N²·D) matmul plus O(N·m) for the cut and the sort, on all CPUs (blocks
    of ceil(chunk_size / CPUs) queries, one per thread, BLAS single-threaded inside).
    Memory: 5 bytes per in-flight query·item (distances and the cut's mask: 360 MB at
    N = 70,000 and the default chunk_size) plus 8 bytes per survivor (~1.2·m to 2·m per
    query, N − 1 when rows are sorted whole); the sort works on ~32k survivors at a time.
    Measured on 2 cores, N = 70,000, D = 64: 23 s and 0.49 GB with 10 classes, 11 s and
    0.42 GB with 100 (benchmarks/retrieval.py, against scikit-learn).

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
    # Queries by increasing R (then class, then index): the rows of a block need about
    # the same number of neighbours, so one sample size fits them all.
    queries = valid[np.lexsort((inverse[valid], r_all[valid]))]
    # ‖q − x‖² = ‖q‖² + (‖x‖² − 2 q·x). ‖q‖² is constant along a query's row, so ranking
    # needs only the bracket, which one matmul of augmented vectors gives with no extra
    # pass over the (B, N) block: [x, ‖x‖²] · [−2q, 1].
    items = np.concatenate([x, np.einsum("ij,ij->i", x, x)[:, None]], axis=1)  # (N, D+1)
    setup = _Retrieval(x, np.ascontiguousarray(items.T), inverse, r_all, k)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = max(1, min(cpus or 1, chunk_size, queries.size // 64))
    size = -(-chunk_size // workers)
    blocks = [queries[i : i + size] for i in range(0, queries.size, size)]
    if workers > 1:
        # NumPy releases the GIL in the matmul, comparisons and sorts: one block per
        # thread, BLAS single-threaded inside, puts every core on all of the work.
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
            scores = list(pool.map(setup.block_scores, blocks))
    else:
        scores = [setup.block_scores(q) for q in blocks]
    p1, rk, rp, mapr = (np.sum(scores, axis=0) / valid.size).tolist()  # block order: fixed
    return {"precision_at_1": p1, f"recall_at_{k}": rk, "r_precision": rp, "map_at_r": mapr}


# Rows needing more than this share of their columns skip the cut: it would keep most of
# the row anyway.
_DENSE_SHARE = 0.25
# Survivors are scored in groups of whole rows of about this many entries: radix passes
# on arrays that stay in cache run ~3x faster than on one array for the block.
_GROUP = 1 << 15


class _Retrieval:
    """What every block of queries reads: embeddings, augmented items (D+1, N), labels
    as class ids, R, k. Per-thread scratch buffers live in `self.local`."""

    def __init__(self, x, items_t, inverse, r_all, k):
        self.x, self.items_t, self.inverse, self.r_all, self.k = x, items_t, inverse, r_all, k
        self.local = threading.local()

    def buffers(self, rows: int):
        """(rows, N) distance and mask buffers of this thread, reused across blocks:
        fresh large arrays would cost page faults on every block."""
        n = self.items_t.shape[1]
        buf = getattr(self.local, "buf", None)
        if buf is None or buf[0].shape[0] < rows:
            buf = (np.empty((rows, n), self.x.dtype), np.empty((rows, n), bool))
            self.local.buf = buf
        return buf[0][:rows], buf[1][:rows]

    def block_scores(self, q: np.ndarray) -> np.ndarray:
        """Sums over the queries ``q`` (B,) of P@1, recall@k, R-precision and AP@R.

        1. d = (B, N) bracket distances, one matmul; d[b, q_b] = NaN (never retrieved).
        2. Cut: each row keeps its columns at or below a bound from a sample of the row
           (`_cut_bounds`): one comparison pass and one flatnonzero. A row that keeps
           fewer than its m columns is cut again at a looser bound, then at +inf (the
           whole row), so the bounds affect the time only, never the result.
        3. Survivors (row-major, so columns ascend within a row) are sorted within their
           rows by a stable LSD radix sort on 16-bit digits of an order-preserving
           integer key of the distance (`_segmented_order`); stability breaks ties by
           column. NumPy's radix argsort of uint16 costs ~5 ns per entry and pass, a
           comparison sort of (distance, column) keys ~40–60 ns per entry.
        4. Scores from the first m survivors of each row (`_group_scores`).
        """
        n = self.items_t.shape[1]
        b = q.size
        d, below = self.buffers(b)
        queries = np.concatenate([-2.0 * self.x[q], np.ones((b, 1), self.x.dtype)], axis=1)
        np.matmul(queries, self.items_t, out=d)  # squared distance minus ‖q‖², same order
        d[np.arange(b), q] = np.nan  # leave the query itself out
        need = np.minimum(np.maximum(self.r_all[q], self.k), n - 1)
        if need.max() > _DENSE_SHARE * n:
            bounds = [np.full(b, np.inf, d.dtype)]
        else:
            bounds = _cut_bounds(queries, self.items_t, q, need)
        return self.cut_scores(d, q, need, bounds, below)

    def cut_scores(self, d, q, need, bounds, below=None):
        """Scores of the rows of ``d`` cut at ``bounds[0]``; rows that keep fewer than
        ``need`` columns are redone (on a copy of their rows) with ``bounds[1:]``."""
        b, n = d.shape
        below = np.less_equal(d, bounds[0].astype(d.dtype)[:, None], out=below)  # NaN: no
        flat = np.flatnonzero(below)
        starts = np.searchsorted(flat, np.arange(b + 1) * n)
        short = np.diff(starts) < need if len(bounds) > 1 else np.zeros(b, bool)
        labels = self.inverse[q]
        r = self.r_all[q]
        total = np.zeros(4)
        ends = np.searchsorted(starts, starts[:-1] + _GROUP, side="right") - 1
        next_short = np.append(np.flatnonzero(short), b)
        lo = 0
        while lo < b:  # groups of consecutive rows, none of them short
            stop = int(next_short[np.searchsorted(next_short, lo)])
            if stop == lo:
                lo += 1
                continue
            hi = min(max(int(ends[lo]), lo + 1), stop)
            total += _group_scores(
                d, flat[starts[lo] : starts[hi]], starts[lo : hi + 1] - starts[lo],
                np.arange(lo, hi) * n, labels[lo:hi], r[lo:hi], self.inverse, self.k,
            )
            lo = hi
        if short.any():
            redo = [bound[short] for bound in bounds[1:]]
            total += self.cut_scores(d[short], q[short], need[short], redo)
        return total


def _group_scores(d, flat, starts, row_base, labels, r, inverse, k):
    """Score sums (P@1, recall@k, R-precision, AP@R) of a few rows of a block.

    Args:
        d: the block's distances; flat: the rows' survivors, flat indices into d,
            row-major; starts: (rows + 1,) each row's run in ``flat``; row_base: (rows,)
            flat index of each row's column 0; labels, r: (rows,) class id and R.
    """
    counts = np.diff(starts)
    rows = len(counts)
    run = np.repeat(np.arange(rows), counts)
    rel = inverse[flat - row_base[run]] == labels[run]
    order = _segmented_order(_order_keys(d.reshape(-1)[flat]), run)
    rel = rel[order]  # rel(i) of each row, nearest first
    first = starts[:-1]
    # recall@k: any of the first k of each row (k is small: a (rows, k) gather).
    j = np.arange(k)
    at = np.minimum(first[:, None] + j, max(len(rel) - 1, 0))
    top_k = (rel[at] & (j < counts[:, None])).any(axis=1) if len(rel) else np.zeros(rows, bool)
    # R-precision and AP@R from the positives among the first R of each row.
    rank = np.arange(len(rel)) - first[run]  # 0-based
    pos = np.flatnonzero(rel & (rank < r[run]))
    row_of = run[pos]
    per_row = np.bincount(row_of, minlength=rows)
    hits = np.arange(1, len(pos) + 1) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    inv_r = 1.0 / r
    return np.array([
        rel[first[counts > 0]].sum(),
        top_k.sum(),
        (per_row * inv_r).sum(),
        (hits / (rank[pos] + 1.0) * inv_r[row_of]).sum(),
    ])


def _cut_bounds(queries, items_t, q, need):
    """Per-row cuts to try in turn: [first, second, +inf], each (B,).

    A sample of S evenly spaced columns holds about e = S·m/N of the row's m nearest; its
    j-th smallest lies below the m-th smallest of the row only when the sample holds j
    of them. j = e + 2√e + 1 fails for ~2 % of the rows (binomial tail), which are cut
    again at j = e + 6√e + 6 (~1e-8), then kept whole. A tighter first cut keeps fewer
    survivors (~(2/√e)·m extra) and costs a larger sample (its own small matmul and a
    partition, ~14 ns per sampled column against ~45 ns per survivor):
    e = (6 m²/N)^(2/3) balances the two (e = 8, the floor, at m = 160 of N = 16k; ≈ 105
    at m = 1,600 of 16k; ≈ 280 at m = 7,000 of 70k).
    """
    n = items_t.shape[1]
    m = int(need.max())
    e = float(np.clip((6.0 * m * m / n) ** (2 / 3), 8.0, 400.0))
    size = min(n, max(1, round(e * n / m)))
    columns = np.arange(size) * n // size
    # Integer keys partition faster than floats (no NaN-aware comparisons).
    sample = _order_keys(queries @ items_t[:, columns])  # (B, S)
    own = np.searchsorted(columns, q)  # the query itself, if sampled: sorted last
    hit = own < size
    hit[hit] = columns[own[hit]] == q[hit]
    sample[np.flatnonzero(hit), own[hit]] = np.iinfo(sample.dtype).max
    expected = size * need / n
    picks = [
        np.ceil(expected + z * np.sqrt(expected) + c).astype(np.int64)
        for z, c in ((2.0, 1.0), (6.0, 6.0))
    ]
    # One partition of the row at the looser pick, then one of its short head.
    bounds = []
    for j in reversed(picks):
        j_in = np.minimum(j, size)
        sample = np.partition(sample, np.unique(j_in) - 1, axis=1)[:, : j_in.max()]
        value = _order_values(np.take_along_axis(sample, j_in[:, None] - 1, axis=1)[:, 0])
        bounds.insert(0, np.where(np.isnan(value) | (j > size), np.inf, value))
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


def _segmented_order(keys: np.ndarray, run: np.ndarray) -> np.ndarray:
    """Permutation sorting ``keys`` within runs of equal ``run`` ids (ascending and
    contiguous), ties in their given order.

    A stable LSD radix sort, 16 bits per pass (NumPy's stable argsort of uint16 is a
    radix sort), the run id last so that the runs stay where they are. When the key's
    top digit spans few values (a row's survivors lie in a narrow range of distances)
    the run id and that digit share one pass: 2 passes instead of 3 for float32.
    """
    if keys.size == 0:
        return np.zeros(0, np.intp)
    digits = [(keys >> shift).astype(np.uint16) for shift in range(0, 8 * keys.itemsize, 16)]
    top = digits.pop().astype(np.int64)
    low, span = int(top.min()), int(top.max() - top.min()) + 1
    rows = int(run[-1]) + 1
    if rows * span <= 1 << 16:
        digits.append((run * span + (top - low)).astype(np.uint16))
    else:
        digits.append(top.astype(np.uint16))
        if rows <= 256:  # a one-byte radix pass
            digits.append(run.astype(np.uint8))
        else:
            width = (rows - 1).bit_length()
            digits += [(run >> shift).astype(np.uint16) for shift in range(0, width, 16)]
    order = np.argsort(digits[0], kind="stable")
    for digit in digits[1:]:
        order = order[np.argsort(digit[order], kind="stable")]
    return order


def calibration_bins(probs, labels, bins: int = 15):
    """Top-1 confidence binned into equal-width bins: the binning of ECE and of every
    reliability diagram (Guo et al., ICML 2017).

    Bins: confidence c = max_k p_k falls in bin b when b/bins < c <= (b+1)/bins, so a
    confidence exactly on an edge goes to the lower bin; c = 0 goes to the first bin and
    c > 1 (float round-off) to the last. This is Guo et al.'s I_m = ((m−1)/M, m/M] and their
    reference code's `gt(lower) * le(upper)` (gpleiss/temperature_scaling). torchmetrics'
    `calibration_error` (`bucketize(..., right=True)`) bins [b/bins, (b+1)/bins) instead, with
    c = 1 alone in an extra bin: the two ECEs differ only when confidences lie exactly on an
    edge, as float64 values b/bins.

    Args:
        probs: (N, C) class probabilities (rows sum to 1).
        labels: (N,) integer labels in [0, C).
        bins: number of bins, >= 1.

    Returns:
        (confidence, accuracy, count), each (bins,): the mean confidence and the fraction of
        correct top-1 predictions in each bin (NaN where the bin is empty), and the number of
        examples per bin (int64).
    """
    p, y = _check_classification_inputs(probs, labels, None)
    if not (isinstance(bins, (int, np.integer)) and bins >= 1):
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # Edges compared as floats, not via ceil(c·bins): the product rounds, and a confidence one
    # ulp above 11/15 would land in the bin below.
    edges = np.arange(bins + 1) / bins
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):  # 0/0 = NaN marks an empty bin
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(which, weights=correct, minlength=bins) / count
    return mean_confidence, accuracy, count


def expected_calibration_error(probs, labels, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al., ICML 2017).

    Formula: ECE = Σ_b (n_b / N) · |accuracy_b − confidence_b| over the bins of
    `calibration_bins` (confidence = max_c p_c; bin b = (b/bins, (b+1)/bins], an edge goes to
    the lower bin, a confidence of exactly 0 to the first).

    Args:
        probs: (N, C) class probabilities (rows sum to 1).
        labels: (N,) integer labels in [0, C).
        bins: number of bins, >= 1.
    """
    confidence, accuracy, count = calibration_bins(probs, labels, bins)
    filled = count > 0
    gap = count[filled] * np.abs(accuracy[filled] - confidence[filled])  # n_b · |acc − conf|
    return float(gap.sum() / count.sum())


def _check_classification_inputs(probs, labels, num_classes: int | None):
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).reshape(-1)
    if p.ndim != 2 or len(p) != len(y) or len(y) == 0:
        raise ValueError(
            f"probs must be (N, C) and labels (N,) with N >= 1; "
            f"got {p.shape} and {np.shape(labels)}"
        )
    classes = p.shape[1] if num_classes is None else num_classes
    if p.shape[1] != classes:
        raise ValueError(f"probs have {p.shape[1]} columns but num_classes={num_classes}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= classes:
        raise ValueError(
            f"labels must be integers in [0, {classes}); got values {np.unique(y)[:10]}"
        )
    return p, y


def classification_metrics(probs, labels, num_classes: int) -> dict:
    """Accuracy, balanced accuracy, macro-F1, ECE and per-class recall.

    Args:
        probs: (N, C) class probabilities, C = num_classes.
        labels: (N,) integer labels in [0, C).
        num_classes: C; classes absent from ``labels`` still count in macro-F1 (as 0 when
            never predicted correctly) and get recall NaN.

    Returns:
        {"accuracy", "balanced_accuracy", "macro_f1", "ece"}: floats;
        "recall_per_class": float64 (C,). Balanced accuracy = mean recall over the classes
        present in ``labels`` (scikit-learn's definition).
    """
    p, y = _check_classification_inputs(probs, labels, num_classes)
    pred = p.argmax(axis=1)
    classes = np.arange(num_classes)
    present = np.bincount(y, minlength=num_classes) > 0
    recall = skm.recall_score(y, pred, labels=classes, average=None, zero_division=0.0)
    recall = np.where(present, recall, np.nan)
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        # Mean of the present classes' recall; equals skm.balanced_accuracy_score without its
        # warning when predictions contain a class absent from y.
        "balanced_accuracy": float(np.nanmean(recall)),
        "macro_f1": float(
            skm.f1_score(y, pred, labels=classes, average="macro", zero_division=0.0)
        ),
        "ece": expected_calibration_error(p, y),
        "recall_per_class": recall.astype(np.float64),
    }
