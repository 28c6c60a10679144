"""Retrieval scores against a slow explicit loop and hand-computed cases."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from training.metrics import retrieval, retrieval_kernels, retrieval_metrics

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
    # survivor) force the second and then the whole-row cut; one at +inf keeps everything;
    # one at the largest float keeps everything too, more than the survivor buffer was
    # sized for (2·m + 64 a row), so every tile grows it and is cut again.
    x, y = grid(n=400, dim=4, classes=20, seed=7)
    want = retrieval_reference(x, y, k=5)
    real = retrieval._cut_bounds
    for pick in ("too low", "second too low", "inf", "too high"):

        def cut(queries, items_t, q, need, pick=pick):
            first, second, whole = real(queries, items_t, q, need)
            low = np.full_like(first, -np.inf)
            if pick == "too low":
                return [low, second, whole]
            if pick == "second too low":
                return [low, low, whole]
            if pick == "too high":
                return [np.full_like(first, np.finfo(queries.dtype).max), whole]
            return [whole]

        monkeypatch.setattr(retrieval, "_cut_bounds", cut)
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
    keys = retrieval._order_keys(values)
    assert keys.dtype == (np.uint32 if dtype == np.float32 else np.uint64)
    rng = np.random.default_rng(0)
    for _ in range(20):
        perm = rng.permutation(len(values))
        a, b = values[perm][:-1], values[perm][1:]
        ka, kb = keys[perm][:-1], keys[perm][1:]
        np.testing.assert_array_equal(ka < kb, a < b)
        np.testing.assert_array_equal(ka == kb, a == b)  # −0.0 == +0.0
    np.testing.assert_array_equal(retrieval._order_values(keys[values != 0]), values[values != 0])


@pytest.mark.slow
def test_retrieval_at_scale_runs_in_bounded_memory():
    # 40k, not 70k: the bound below is linear in n and the time quadratic; 70k is measured
    # by benchmarks/retrieval.py (make bench).
    n, dim, chunk = 40_000, 64, 512
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = rng.integers(0, 1000, size=n)  # ~40 per class: R_max ≈ 60
    retrieval_metrics(x[:500], y[:500])  # loads the compiled kernels: not the call's memory
    tracemalloc.start()
    try:
        got = retrieval_metrics(x, y, chunk_size=chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A 40k × 40k float32 matrix would be 6.4 GB, and a block row of chunk queries' distances
    # and cut mask 100 MiB. What may be held: the augmented items (D+1, N) float32 (10 MiB),
    # and per thread one 1 MiB tile plus its block's survivors (~340 per query here, 8 bytes
    # each: ~0.7 MiB).
    items = n * (dim + 1) * 4
    assert peak < items + 16 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert 0.0 <= got["precision_at_1"] < 0.05  # random embeddings: chance is ~1/1000




# --- the compiled kernels, against explicit loops ---------------------------------------------


def test_cut_tile_keeps_what_a_loop_keeps_and_packs_row_distance_column():
    rng = np.random.default_rng(3)
    tile = rng.normal(size=(6, 40)).astype(np.float32)
    tile[1, 5], tile[1, 6], tile[2, 7] = -0.0, 0.0, 0.0  # signed zeros rank together
    bound = np.array([0.0, 0.0, -0.5, np.inf, -np.inf, 1.0], np.float32)
    c0, bits, own = 100, 8, np.array([103, 0, 139, 140, 100, 120])  # own column: never kept
    out, kept = np.zeros(240, np.uint64), np.zeros(6, np.int64)
    original = tile.copy()
    end = retrieval_kernels.cut_tile(tile, tile.view(np.uint32), bound, own, c0, bits, out, 0, kept)
    want = []  # (row, distance, column) in the kernel's order: row-major
    for i in range(6):
        for j in range(40):
            if c0 + j != own[i] and original[i, j] <= bound[i]:
                want.append((i, float(original[i, j]), c0 + j))
    assert end == len(want) and kept.tolist() == [sum(w[0] == i for w in want) for i in range(6)]
    packed = out[:end]
    assert ((packed >> np.uint64(32 + bits)).astype(int) == [w[0] for w in want]).all()
    assert ((packed & np.uint64(2**bits - 1)).astype(int) == [w[2] % 2**bits for w in want]).all()
    keys = (packed >> np.uint64(bits)) & np.uint64(2**32 - 1)
    distances = np.array([w[1] for w in want], np.float32)
    np.testing.assert_array_equal(keys.astype(np.uint32), retrieval._order_keys(distances))
    # The packed order is the ranking: by row, distance, column.
    ranked = sorted(range(end), key=lambda t: (want[t][0], want[t][1], want[t][2]))
    np.testing.assert_array_equal(np.argsort(packed, kind="stable"), ranked)


def test_cut_tile_past_the_buffer_writes_nothing_and_says_how_many():
    tile = np.zeros((3, 10), np.float32)
    out, kept = np.zeros(4, np.uint64), np.zeros(3, np.int64)
    bound, own = np.zeros(3, np.float32), np.full(3, -1)
    end = retrieval_kernels.cut_tile(tile, tile.view(np.uint32), bound, own, 0, 4, out, 2, kept)
    assert end == 2 + 30 and kept.tolist() == [10, 10, 10]
    assert out[:2].tolist() == [0, 0] and (out[2:] != 0).all()  # filled up to its size only


def test_ranked_scores_match_a_loop():
    rng = np.random.default_rng(5)
    inverse = rng.integers(0, 4, size=50)
    cols = rng.integers(0, 50, size=200)
    need = np.array([1, 7, 12, 30])
    starts = np.array([0, 10, 40, 100])
    labels, r, k = np.array([0, 1, 2, 3]), np.array([1, 3, 12, 20]), 5
    kept = np.array([10, 30, 5, 60])  # row 2 has fewer columns than it needs: ranks them
    got = retrieval_kernels.ranked_scores(cols, starts, kept, need, labels, r, inverse, k)
    want = np.zeros(4)
    for i in range(4):
        rel = [inverse[cols[starts[i] + t]] == labels[i] for t in range(min(need[i], kept[i]))]
        want[0] += rel[0]
        want[1] += any(rel[:k])
        want[2] += sum(rel[: r[i]]) / r[i]
        want[3] += sum(sum(rel[: t + 1]) / (t + 1) for t in range(len(rel[: r[i]])) if rel[t]) / r[i]
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_item_at_a_nan_distance_is_never_retrieved(dtype):
    # Rows 0-2 are NaN (a diverged model): every distance to them is NaN. They are never
    # retrieved, and as queries retrieve nothing (score 0); the others rank the finite rest.
    x, y = clustered(n=50, dim=4, classes=5, seed=0)
    x[:3] = np.nan
    n, k = len(y), 5
    p1 = rk = rp = mapr = 0.0
    for i in range(n):
        r = int((y == y[i]).sum()) - 1
        finite = [j for j in range(n) if j != i and np.isfinite(x[i]).all() and np.isfinite(x[j]).all()]
        ranked = [j for _, j in sorted((float(np.sum((x[i] - x[j]) ** 2)), j) for j in finite)]
        rel = [y[j] == y[i] for j in ranked[: max(r, k)]]
        p1 += bool(rel) and rel[0]
        rk += any(rel[:k])
        rp += sum(rel[:r]) / r
        mapr += sum(sum(rel[: t + 1]) / (t + 1) for t in range(len(rel[:r])) if rel[t]) / r
    want = {"precision_at_1": p1 / n, "recall_at_5": rk / n, "r_precision": rp / n,
            "map_at_r": mapr / n}
    assert retrieval_metrics(x.astype(dtype), y) == pytest.approx(want, abs=1e-12)
    x[:] = np.nan
    assert set(retrieval_metrics(x.astype(dtype), y).values()) == {0.0}
