"""Metrics against slow explicit loops and hand-computed cases."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from training import metrics
from training.metrics import (
    calibration_bins,
    classification_metrics,
    expected_calibration_error,
    retrieval_metrics,
)

# --- slow references: one query / one bin / one class at a time ----------------------------


def retrieval_reference(embeddings, labels, k=5):
    """Leave-one-out retrieval as pytorch-metric-learning's AccuracyCalculator defines it.

    Per query: sort all other items by (distance, index), so exact ties go to the lower
    index; skip queries whose class has no other item (R = 0)."""
    x = np.asarray(embeddings, dtype=np.float64)
    n = len(labels)
    p1 = rk = rp = mapr = 0.0
    queries = 0
    for i in range(n):
        others = [j for j in range(n) if j != i]
        r = sum(1 for j in others if labels[j] == labels[i])
        if r == 0:
            continue
        queries += 1
        dists = [(float(np.sqrt(np.sum((x[i] - x[j]) ** 2))), j) for j in others]
        ranked = [j for _, j in sorted(dists)]
        rel = [1 if labels[j] == labels[i] else 0 for j in ranked]
        p1 += rel[0]
        rk += 1 if any(rel[:k]) else 0
        rp += sum(rel[:r]) / r
        ap, hits = 0.0, 0
        for pos in range(r):
            hits += rel[pos]
            ap += hits / (pos + 1) * rel[pos]
        mapr += ap / r
    return {
        "precision_at_1": p1 / queries,
        f"recall_at_{k}": rk / queries,
        "r_precision": rp / queries,
        "map_at_r": mapr / queries,
    }


def ece_reference(probs, labels, bins=15):
    n = len(labels)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [
            i for i in range(n) if lo < max(probs[i]) <= hi or (b == 0 and max(probs[i]) == 0)
        ]
        if not members:
            continue
        acc = np.mean([int(np.argmax(probs[i]) == labels[i]) for i in members])
        conf = np.mean([max(probs[i]) for i in members])
        total += len(members) / n * abs(acc - conf)
    return total


def calibration_bins_reference(probs, labels, bins=15):
    """Bin b holds b/bins < c <= (b+1)/bins (c = 0 in bin 0): one example at a time."""
    confidence, accuracy, count = np.full(bins, np.nan), np.full(bins, np.nan), np.zeros(bins)
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = []
        for i in range(len(labels)):
            c = max(probs[i])
            if lo < c <= hi or (b == 0 and c == 0):
                members.append(i)
        count[b] = len(members)
        if members:
            confidence[b] = np.mean([max(probs[i]) for i in members])
            accuracy[b] = np.mean([int(np.argmax(probs[i]) == labels[i]) for i in members])
    return confidence, accuracy, count


def clustered(n, dim, classes, seed, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 2.0
    labels = rng.integers(0, classes, size=n)
    return centres[labels] + spread * rng.normal(size=(n, dim)), labels


# --- retrieval ------------------------------------------------------------------------------


def test_retrieval_hand_computed_1d():
    # Points on a line. Labels: a a b b a. Nearest orders (ties impossible here):
    #   0 (x=0, a): 1(a) 2(b) 3(b) 4(a); R=2: rel 1 0 0 1 -> P@1=1, RP=1/2, AP=(1/1)/2=1/2
    #   1 (x=1, a): 0(a) 2(b) 3(b) 4(a); same as query 0 -> 1, 1/2, 1/2
    #   2 (x=5, b): 3(b) 1(a) 0(a) 4(a); R=1: rel 1 -> 1, 1, 1
    #   3 (x=6.5, b): 2(b) 1 0 4;        R=1 -> 1, 1, 1
    #   4 (x=20, a): 3(b) 2(b) 1(a) 0(a); R=2: rel 0 0 1 1 -> P@1=0, RP=0, AP=0
    x = np.array([[0.0], [1.0], [5.0], [6.5], [20.0]])
    y = np.array([0, 0, 1, 1, 0])
    got = retrieval_metrics(x, y, k=2)
    assert got["precision_at_1"] == pytest.approx(4 / 5)
    assert got["recall_at_2"] == pytest.approx(4 / 5)  # query 4's 2 nearest are both b
    assert got["r_precision"] == pytest.approx((0.5 + 0.5 + 1 + 1 + 0) / 5)
    assert got["map_at_r"] == pytest.approx((0.5 + 0.5 + 1 + 1 + 0) / 5)


def test_map_at_r_rewards_order_within_r():
    # Labels a a b a c c at x = 0, 1, 2.5, 3.7, 100, 101 (no distance ties).
    #   q0 (a, R=2): 1(a) 2(b) 3(a) -> P@1 1, RP 1/2, AP (1/1)/2 = 1/2
    #   q1 (a, R=2): 0(a) 2(b) 3(a) -> 1, 1/2, 1/2
    #   q2 (b, R=0): not a query
    #   q3 (a, R=2): 2(b) 1(a) 0(a) -> 0, 1/2, (1/2)/2 = 1/4   <- same RP, lower AP
    #   q4, q5 (c, R=1): each other -> 1, 1, 1
    x = np.array([[0.0], [1.0], [2.5], [3.7], [100.0], [101.0]])
    y = np.array([0, 0, 1, 0, 2, 2])
    got = retrieval_metrics(x, y, k=1)
    assert got["precision_at_1"] == pytest.approx(4 / 5)
    assert got["recall_at_1"] == pytest.approx(4 / 5)
    assert got["r_precision"] == pytest.approx(3.5 / 5)
    assert got["map_at_r"] == pytest.approx(3.25 / 5)
    assert got == pytest.approx(retrieval_reference(x, y, k=1))


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 10_000])
@pytest.mark.parametrize("k", [1, 5])
def test_retrieval_matches_reference_for_any_chunk_size(chunk_size, k):
    x, y = clustered(n=150, dim=6, classes=7, seed=k)
    assert retrieval_metrics(x, y, k=k, chunk_size=chunk_size) == pytest.approx(
        retrieval_reference(x, y, k=k), abs=1e-12
    )


def test_retrieval_skips_queries_without_a_positive_and_large_k():
    x, y = clustered(n=60, dim=4, classes=5, seed=3)
    y = y.copy()
    y[0] = 99  # a class with a single item: not a query, still a (negative) neighbour
    got = retrieval_metrics(x, y, k=80)  # k > N - 1 is clipped to the whole set
    assert got == pytest.approx(retrieval_reference(x, y, k=80))
    assert got["recall_at_80"] == 1.0


def test_retrieval_float32_inputs_agree_with_float64_reference():
    x, y = clustered(n=120, dim=8, classes=4, seed=5, spread=0.5)
    got = retrieval_metrics(x.astype(np.float32), y)
    assert got == pytest.approx(retrieval_reference(x, y), abs=0.02)


def test_retrieval_without_any_positive_is_an_error():
    with pytest.raises(ValueError, match="no query has another item of its class"):
        retrieval_metrics(np.eye(3), np.array([0, 1, 2]))


def test_retrieval_rejects_bad_shapes():
    with pytest.raises(ValueError, match="embeddings must be \\(N, D\\)"):
        retrieval_metrics(np.zeros((4, 2)), np.zeros(5))
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1"):
        retrieval_metrics(np.zeros((4, 2)), np.zeros(4), chunk_size=0)


def grid(n, dim, classes, seed, values=3):
    """Small integer coordinates: many exact distance ties, in float32 and float64 alike
    (every distance is computed exactly), between classes as well as within them."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, values, size=(n, dim)).astype(np.float64), rng.integers(0, classes, n)


def test_retrieval_ties_go_to_the_lower_index():
    # x = 0, 1, −1, 10, 10. Query 0 has two neighbours at distance 1, items 1 and 2; the
    # lower index (1) ranks first, so query 0's P@1 is whether item 1 shares its class.
    #   labels a a b a b: q0 → 1 (a) hit; q1 → 0 (a) hit; q2 (b) → 0 (a); q3 (a) → 4 (b);
    #                     q4 (b) → 3 (a): P@1 = 2/5
    #   labels a b a a b: q0 → 1 (b) miss; q1 (b) → 0 (a); q2 → 0 (a) hit; q3, q4 miss:
    #                     P@1 = 1/5
    x = np.array([[0.0], [1.0], [-1.0], [10.0], [10.0]])
    for labels, p1 in (([0, 0, 1, 0, 1], 2 / 5), ([0, 1, 0, 0, 1], 1 / 5)):
        for dtype in (np.float32, np.float64):
            got = retrieval_metrics(x.astype(dtype), np.array(labels), k=1)
            assert got["precision_at_1"] == pytest.approx(p1)
            assert got == pytest.approx(retrieval_reference(x, np.array(labels), k=1), abs=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 3, 64, 10_000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_retrieval_with_ties_and_singletons_matches_reference(chunk_size, dtype):
    x, y = grid(n=300, dim=3, classes=12, seed=chunk_size)
    y[:4] = [100, 101, 102, 103]  # four singleton classes: never queries, still neighbours
    assert (np.bincount(y)[y] == 1).sum() == 4
    got = retrieval_metrics(x.astype(dtype), y, k=5, chunk_size=chunk_size)
    assert got == pytest.approx(retrieval_reference(x, y, k=5), abs=1e-12)


@pytest.mark.parametrize("classes", [2, 3, 40])
def test_retrieval_few_or_many_classes_matches_reference(classes):
    # 2 and 3 classes: R > N/4, every row is sorted in full; 40: R ≈ 7, the cut path.
    x, y = clustered(n=280, dim=5, classes=classes, seed=classes, spread=2.0)
    for k in (1, 5):
        for chunk_size in (5, 1024):
            got = retrieval_metrics(x.astype(np.float32), y, k=k, chunk_size=chunk_size)
            ref = retrieval_reference(x.astype(np.float32), y, k=k)
            assert got == pytest.approx(ref, abs=1e-12), (k, chunk_size)


def test_retrieval_does_not_depend_on_the_cut(monkeypatch):
    # The sampled cuts only decide how many columns survive. Cuts far too low (−inf: no
    # survivor) force the second and then the whole-row cut; one at +inf keeps everything.
    x, y = grid(n=400, dim=4, classes=20, seed=7)
    want = retrieval_reference(x, y, k=5)
    real = metrics._cut_bounds
    for pick in ("too low", "second too low", "inf"):

        def cut(queries, items_t, q, need, pick=pick):
            first, second, whole = real(queries, items_t, q, need)
            low = np.full_like(first, -np.inf)
            if pick == "too low":
                return [low, second, whole]
            if pick == "second too low":
                return [low, low, whole]
            return [whole]

        monkeypatch.setattr(metrics, "_cut_bounds", cut)
        for dtype in (np.float32, np.float64):
            got = retrieval_metrics(x.astype(dtype), y, k=5, chunk_size=50)
            assert got == pytest.approx(want, abs=1e-12), (pick, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_order_keys_sort_like_the_floats(dtype):
    info = np.finfo(dtype)
    values = np.array(
        [-np.inf, -info.max, -1.5, -info.tiny, -info.smallest_subnormal, -0.0, 0.0,
         info.smallest_subnormal, info.tiny, 1.0, 1.0, 2.5, info.max, np.inf], dtype=dtype,
    )
    keys = metrics._order_keys(values)
    assert keys.dtype == (np.uint32 if dtype == np.float32 else np.uint64)
    rng = np.random.default_rng(0)
    for _ in range(20):
        perm = rng.permutation(len(values))
        a, b = values[perm][:-1], values[perm][1:]
        ka, kb = keys[perm][:-1], keys[perm][1:]
        np.testing.assert_array_equal(ka < kb, a < b)
        np.testing.assert_array_equal(ka == kb, a == b)  # −0.0 == +0.0
    np.testing.assert_array_equal(metrics._order_values(keys[values != 0]), values[values != 0])


@pytest.mark.parametrize("spread", [2**8, 2**30])  # narrow keys: 2 passes; wide: 3 passes
@pytest.mark.parametrize("rows", [1, 7, 300])
def test_segmented_order_is_a_stable_sort_within_runs(spread, rows):
    rng = np.random.default_rng(rows)
    lengths = rng.integers(0, 40, size=rows)
    run = np.repeat(np.arange(rows), lengths)
    keys = (2**31 + rng.integers(0, spread, size=run.size)).astype(np.uint32)
    keys[::3] = keys[0]  # many ties
    order = metrics._segmented_order(keys, run)
    np.testing.assert_array_equal(order, np.lexsort((np.arange(run.size), keys, run)))
    wide = keys.astype(np.uint64) << np.uint64(20)  # float64 keys: 4 digits
    np.testing.assert_array_equal(
        metrics._segmented_order(wide, run), np.lexsort((np.arange(run.size), wide, run))
    )


@pytest.mark.slow
def test_retrieval_at_scale_runs_in_bounded_memory():
    # 40k, not 70k: the bound below is linear in n and the time quadratic; 70k is measured
    # by benchmarks/retrieval.py (make bench).
    n, dim, chunk = 40_000, 64, 512
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = rng.integers(0, 1000, size=n)  # ~40 per class: R_max ≈ 60
    tracemalloc.start()
    try:
        got = retrieval_metrics(x, y, chunk_size=chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A 40k × 40k float32 matrix would be 6.4 GB; the blocked version holds chunk queries'
    # distances and cut mask (5 bytes per entry) plus their survivors (~2·R each).
    assert peak < 8 * chunk * n + 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert 0.0 <= got["precision_at_1"] < 0.05  # random embeddings: chance is ~1/1000


# --- calibration ------------------------------------------------------------------------------


def test_calibration_bins_put_an_edge_in_the_lower_bin():
    probs = np.array([
        [0.0, 0.0, 0.0, 0.0],  # confidence 0: first bin
        [0.25, 0.25, 0.25, 0.25],  # on the edge 1/4: bin 0, not bin 1
        [0.3, 0.3, 0.2, 0.2],
        [0.5, 0.5, 0.0, 0.0],  # on the edge 1/2: bin 1
        [0.75, 0.25, 0.0, 0.0],  # on the edge 3/4: bin 2
        [1.0, 0.0, 0.0, 0.0],  # confidence 1: last bin
    ])
    labels = np.array([0, 1, 0, 0, 0, 1])  # top-1 (the first maximum) right: rows 0, 2, 3, 4
    confidence, accuracy, count = calibration_bins(probs, labels, bins=4)
    assert count.tolist() == [2, 2, 1, 1]
    np.testing.assert_allclose(confidence, [0.125, 0.4, 0.75, 1.0])
    np.testing.assert_allclose(accuracy, [0.5, 1.0, 1.0, 0.0])


def test_calibration_bins_every_edge_of_fifteen():
    # Confidence exactly k/15 goes to bin k - 1, one ulp above it to bin k (ceil(c·15) puts
    # nextafter(11/15) in bin 10: the product rounds down to 11).
    edges = np.arange(1, 16) / 15
    above = np.nextafter(edges[:-1], 2.0)
    confidences = np.concatenate([edges, above])
    probs = np.stack([np.r_[c, np.full(15, (1 - c) / 15)] for c in confidences])  # max = c
    _, _, count = calibration_bins(probs, np.zeros(len(probs), dtype=int))
    expected = np.bincount(np.r_[np.arange(15), np.arange(1, 15)], minlength=15)
    assert count.tolist() == expected.tolist()


def test_calibration_bins_empty_bins_are_nan():
    confidence, accuracy, count = calibration_bins(np.array([[0.9, 0.1]]), np.array([0]), 5)
    assert count.tolist() == [0, 0, 0, 0, 1]
    assert np.isnan(confidence[:4]).all() and np.isnan(accuracy[:4]).all()
    assert (confidence[4], accuracy[4]) == (0.9, 1.0)
    with pytest.raises(ValueError, match="bins must be an integer >= 1"):
        calibration_bins(np.array([[0.9, 0.1]]), np.array([0]), 0)


@pytest.mark.parametrize("bins", [1, 10, 15])
def test_calibration_bins_match_loop_reference(bins):
    rng = np.random.default_rng(bins)
    probs = rng.dirichlet(np.ones(5) * 0.5, size=400)
    probs[:bins] = 0.0
    probs[:bins, 0] = np.arange(1, bins + 1) / bins  # every edge, exactly
    probs[bins] = 0.0  # confidence 0
    labels = rng.integers(0, 5, size=400)
    got = calibration_bins(probs, labels, bins)
    want = calibration_bins_reference(probs, labels, bins)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12)
    assert got[2].dtype == np.int64 and got[2].sum() == 400


def test_ece_hand_computed():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 1])  # correct, wrong, correct
    # 15 bins: confidences 0.9, 0.6, 0.7 fall in three different bins.
    assert expected_calibration_error(probs, labels) == pytest.approx((0.1 + 0.6 + 0.3) / 3)
    # One bin: |accuracy 2/3 - mean confidence 2.2/3|.
    assert expected_calibration_error(probs, labels, bins=1) == pytest.approx(0.2 / 3)


def test_ece_perfectly_confident_and_right_is_zero():
    probs = np.eye(4)[[0, 1, 2, 3, 1]]
    assert expected_calibration_error(probs, np.array([0, 1, 2, 3, 1])) == 0.0


@pytest.mark.parametrize("bins", [1, 10, 15])
def test_ece_matches_loop_reference(bins):
    rng = np.random.default_rng(bins)
    logits = rng.normal(size=(500, 6)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs[:5] = np.eye(6)[:5]  # confidence exactly 1.0 and bin edges
    probs[5] = [0.2, 0.2, 0.2, 0.2, 0.2, 0.0]
    labels = rng.integers(0, 6, size=500)
    got = expected_calibration_error(probs, labels, bins=bins)
    assert got == pytest.approx(ece_reference(probs, labels, bins), abs=1e-12)


# --- classification ---------------------------------------------------------------------------


def classification_reference(probs, labels, num_classes):
    pred = [int(np.argmax(p)) for p in probs]
    recall, f1 = [], []
    for c in range(num_classes):
        tp = sum(1 for t, p in zip(labels, pred, strict=True) if t == c and p == c)
        fn = sum(1 for t, p in zip(labels, pred, strict=True) if t == c and p != c)
        fp = sum(1 for t, p in zip(labels, pred, strict=True) if t != c and p == c)
        recall.append(tp / (tp + fn) if tp + fn else float("nan"))
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    present = [r for r in recall if not np.isnan(r)]
    return {
        "accuracy": sum(t == p for t, p in zip(labels, pred, strict=True)) / len(labels),
        "balanced_accuracy": sum(present) / len(present),
        "macro_f1": sum(f1) / num_classes,
        "recall_per_class": recall,
    }


def test_classification_hand_computed():
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    labels = np.array([0, 1, 1, 2])  # predictions 0, 1, 0, 2
    got = classification_metrics(probs, labels, 3)
    assert got["accuracy"] == pytest.approx(3 / 4)
    np.testing.assert_allclose(got["recall_per_class"], [1.0, 0.5, 1.0])
    assert got["balanced_accuracy"] == pytest.approx(2.5 / 3)
    # F1: class 0 = 2·1/(2+1+0) = 2/3, class 1 = 2/(2+0+1) = 2/3, class 2 = 1.
    assert got["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert got["ece"] == pytest.approx(expected_calibration_error(probs, labels))


def test_classification_matches_loop_reference_with_an_absent_class():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 5))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 4, size=300)  # class 4 never occurs, but is predicted
    got = classification_metrics(probs, labels, 5)
    ref = classification_reference(probs, labels, 5)
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert got[key] == pytest.approx(ref[key], abs=1e-12), key
    np.testing.assert_allclose(got["recall_per_class"], ref["recall_per_class"])
    assert np.isnan(got["recall_per_class"][4])


def test_classification_rejects_bad_inputs():
    with pytest.raises(ValueError, match="probs have 3 columns but num_classes=4"):
        classification_metrics(np.full((2, 3), 1 / 3), np.array([0, 1]), 4)
    with pytest.raises(ValueError, match="labels must be integers in \\[0, 3\\)"):
        classification_metrics(np.full((2, 3), 1 / 3), np.array([0, 3]), 3)
