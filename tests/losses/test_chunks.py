"""Semi-hard mining in anchor blocks gives the same values and gradients as the loops."""

import keras
import numpy as np
import pytest
import reference
from keras import ops

from losses import TripletLoss, mining, triplet_loss
from losses._chunks import map_row_chunks


@pytest.mark.parametrize("rows,chunk", [(11, 4), (12, 4), (3, 4), (1, 1)])
def test_map_row_chunks_equals_one_pass(rows, chunk, rng):
    # A row-wise argsort (of distinct values, so no tie order to disagree on) of two
    # inputs: the blocks must come back in order, the padded last block must be cut, and
    # B <= chunk must skip the loop.
    x = rng.permutation(rows * 7).reshape(rows, 7).astype("float32")
    mask = x > rows * 2
    got = map_row_chunks(
        lambda b: ops.cast(ops.argsort(ops.where(b[1], b[0], -b[0]), axis=1), "int32"),
        (ops.convert_to_tensor(x), ops.convert_to_tensor(mask)),
        chunk,
    )
    want = np.argsort(np.where(mask, x, -x), axis=1, kind="stable")
    assert ops.convert_to_numpy(got).shape == (rows, 7)
    np.testing.assert_array_equal(ops.convert_to_numpy(got), want)


@pytest.fixture
def small_chunk(monkeypatch):
    """Blocks of 5 anchors: a batch of 12 runs as 5 + 5 + 2 (padded) rows."""
    monkeypatch.setattr(mining, "SEMI_HARD_CHUNK", 5)


@pytest.mark.parametrize("kind", ["euclidean", "squared", "cosine"])
@pytest.mark.parametrize("soft", [False, True])
def test_chunked_semi_hard_matches_reference(kind, soft, small_chunk, rng):
    for _ in range(2):
        labels = rng.integers(0, 3, size=12)
        emb = rng.normal(size=(12, 4)).astype("float32")
        got = float(TripletLoss(0.5, "semi-hard", kind, soft)(labels, emb))
        want = reference.triplet(labels, emb, 0.5, "semi-hard", kind, soft)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_chunked_semi_hard_gradient_matches_finite_differences(small_chunk, grad, rng):
    labels = rng.integers(0, 2, size=12)
    emb = rng.normal(size=(12, 3)).astype("float32")
    _, got = grad(lambda x: ops.mean(triplet_loss(labels, x, 0.5, "semi-hard")), emb)
    want = reference.numeric_gradient(lambda x: reference.triplet(labels, x, 0.5, "semi-hard"), emb)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def test_chunked_semi_hard_in_compiled_evaluate(small_chunk, rng):
    # evaluate() traces the loss (XLA on JAX, tf.function on TensorFlow). Batches of
    # 12, 12 and 3: TensorFlow retraces the last one with an unknown batch size, and 3 is
    # below the block size of 5, so the loop must not pad it up to 5 rows.
    x = rng.normal(size=(27, 4)).astype("float32")
    y = rng.integers(0, 3, size=27)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(loss=TripletLoss(0.5))
    emb = ops.convert_to_numpy(model(x))
    batches = [slice(0, 12), slice(12, 24), slice(24, 27)]
    # Keras averages the batch losses weighted by batch size.
    want = sum((s.stop - s.start) * reference.triplet(y[s], emb[s], 0.5) for s in batches) / 27
    got = model.evaluate(x, y, batch_size=12, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rows,chunk", [(11, 4), (12, 4), (3, 4)])
def test_map_row_chunks_with_several_outputs(rows, chunk, rng):
    # Two outputs of different dtypes per block: padded last block (11), exact blocks
    # (12, where no padded rows are cut) and a single call (3 <= chunk).
    x = rng.permutation(rows * 7).reshape(rows, 7).astype("float32")
    doubled, order = map_row_chunks(
        lambda b: (2.0 * b[0], ops.argsort(b[0], axis=1)),
        (ops.convert_to_tensor(x),),
        chunk,
        dtype=("float32", "int16"),
    )
    assert ops.convert_to_numpy(order).dtype == np.int16
    np.testing.assert_array_equal(ops.convert_to_numpy(doubled), 2.0 * x)
    np.testing.assert_array_equal(ops.convert_to_numpy(order), np.argsort(x, axis=1))


def semi_hard_loops(d, positive, negative):
    """n(a, p) per pair, one anchor at a time: the nearest negative strictly farther than
    p, else the farthest negative; -1 where a has no negative."""
    b = len(d)
    n = np.full((b, b), -1)
    for a in range(b):
        negs = [j for j in range(b) if negative[a, j]]
        for p in range(b):
            if not negs:
                continue
            farther = [j for j in negs if d[a, j] > d[a, p]]
            n[a, p] = min(farther, key=lambda j: d[a, j]) if farther else max(negs, key=lambda j: d[a, j])
    return n


def mining_batch(rng, b):
    """(d, positive, negative) for b anchors of 3 classes: symmetric distances, an anchor
    whose class has no positive, one without negatives, and a tie that is not "farther"."""
    labels = rng.integers(0, 3, size=b)
    labels[-1] = 7  # an anchor whose class has no positive
    d = rng.uniform(0.1, 2.0, size=(b, b)).astype("float32")
    d = (d + d.T) / 2
    same = labels[:, None] == labels[None, :]
    d[0, np.flatnonzero(~same[0])[0]] = d[0, np.flatnonzero(same[0])[1]]  # tie: not "farther"
    np.fill_diagonal(d, 0.0)
    positive, negative = same & ~np.eye(b, dtype=bool), ~same
    negative[3] = False  # an anchor without negatives: no valid pair
    return d, positive, negative


def test_semi_hard_value_and_gradient_match_loops(small_chunk, grad, rng):
    # x = d(a, p) − d(a, n(a, p)); d(Σ w·x over valid pairs)/dd is +w at (a, p) and −w at
    # (a, n(a, p)), summed where several p pick the same n. Blocks of 5 rows over 13.
    b = 13
    d, positive, negative = mining_batch(rng, b)
    w = rng.uniform(size=(b, b)).astype("float32")
    n = semi_hard_loops(d, positive, negative)
    valid = positive & (n >= 0)
    want_x = np.where(valid, d - np.take_along_axis(d, np.maximum(n, 0), axis=1), 0.0)
    want_g = np.where(valid, w, 0.0)
    for a, p in zip(*np.nonzero(valid), strict=True):
        want_g[a, n[a, p]] -= w[a, p]

    def loss(dist):
        x, ok = mining.semi_hard(dist, ops.convert_to_tensor(positive), ops.convert_to_tensor(negative))
        assert np.array_equal(ops.convert_to_numpy(ok), valid)
        return ops.sum(ops.where(ok, x * ops.convert_to_tensor(w), 0.0))

    value, got_g = grad(loss, d)
    x, _ = mining.semi_hard(ops.convert_to_tensor(d), ops.convert_to_tensor(positive), ops.convert_to_tensor(negative))
    np.testing.assert_allclose(np.where(valid, ops.convert_to_numpy(x), 0.0), want_x, atol=1e-6)
    np.testing.assert_allclose(value, np.sum(w * want_x), rtol=1e-5)
    np.testing.assert_allclose(got_g, want_g, atol=1e-6)


@pytest.mark.parametrize("rows,chunk", [(11, 4), (12, 4), (3, 4)])
def test_map_row_chunks_with_other_output_widths(rows, chunk, rng):
    # A (B, M) output next to a (B, 2) per-row summary, from a (B, M) and a (B, 1) input.
    x = rng.normal(size=(rows, 7)).astype("float32")
    scale = rng.normal(size=(rows, 1)).astype("float32")
    scaled, summary = map_row_chunks(
        lambda b: (b[0] * b[1], ops.stack([ops.min(b[0], axis=1), ops.max(b[0], axis=1)], axis=1)),
        (ops.convert_to_tensor(x), ops.convert_to_tensor(scale)),
        chunk,
        dtype=("float32", "float32"),
        widths=(None, 2),
    )
    np.testing.assert_array_equal(ops.convert_to_numpy(scaled), x * scale)
    np.testing.assert_array_equal(ops.convert_to_numpy(summary), np.stack([x.min(1), x.max(1)], 1))


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("b,chunk", [(13, 5), (15, 5), (13, 16)], ids=["padded", "exact", "one-block"])
def test_semi_hard_hinge_value_and_gradient_match_loops(soft, b, chunk, grad, rng, monkeypatch):
    # per_anchor[a] = Σ_p h(x(a, p)) over valid p; with weights u per anchor,
    # d(Σ u·per_anchor)/dd is +u_a·h'(x) at (a, p) and −u_a·h'(x) at (a, n(a, p)).
    monkeypatch.setattr(mining, "SEMI_HARD_CHUNK", chunk)
    margin = 0.3
    d, positive, negative = mining_batch(rng, b)
    n = semi_hard_loops(d, positive, negative)
    valid = positive & (n >= 0)
    u = rng.uniform(0.5, 1.5, size=b).astype("float32")
    want_sum, want_active, want_g = np.zeros(b), np.zeros(b, int), np.zeros((b, b))
    for a, p in zip(*np.nonzero(valid), strict=True):
        x = float(d[a, p]) - float(d[a, n[a, p]])
        want_sum[a] += np.log1p(np.exp(x)) if soft else max(x + margin, 0.0)
        want_active[a] += x + margin > 0
        slope = 1.0 / (1.0 + np.exp(-x)) if soft else float(x + margin > 0)
        want_g[a, p] += u[a] * slope
        want_g[a, n[a, p]] -= u[a] * slope
    assert 0 < want_active.sum() < valid.sum()  # both sides of the hinge are exercised
    masks = ops.convert_to_tensor(positive), ops.convert_to_tensor(negative)

    def weighted(dist):
        per_anchor, _, _ = mining.semi_hard_hinge(dist, *masks, margin, soft)
        return ops.sum(per_anchor * ops.convert_to_tensor(u))

    value, got_g = grad(weighted, d)
    per_anchor, active, ok = mining.semi_hard_hinge(ops.convert_to_tensor(d), *masks, margin, soft)
    np.testing.assert_array_equal(ops.convert_to_numpy(ok), valid)
    np.testing.assert_array_equal(ops.convert_to_numpy(active), want_active)
    np.testing.assert_allclose(ops.convert_to_numpy(per_anchor), want_sum, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value, np.sum(u * want_sum), rtol=1e-5)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["euclidean", "squared", "cosine"])
@pytest.mark.parametrize("soft", [False, True])
def test_chunked_semi_hard_gradient_matches_finite_differences_every_distance(
    kind, soft, small_chunk, grad, rng
):
    # 13 anchors in blocks of 5 (the last one padded), through the distance's own gradient.
    labels = rng.integers(0, 3, size=13)
    emb = rng.normal(size=(13, 3)).astype("float32")
    _, got = grad(lambda x: ops.mean(triplet_loss(labels, x, 0.5, "semi-hard", kind, soft)), emb)
    want = reference.numeric_gradient(
        lambda x: reference.triplet(labels, x, 0.5, "semi-hard", kind, soft), emb
    )
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def test_chunked_semi_hard_gradient_in_compiled_fit(small_chunk, rng):
    # fit() traces the gradient too (XLA on JAX, tf.function on TensorFlow, where the last
    # batch of 3, below the block size, is retraced with an unknown batch size). One SGD
    # step per batch, lr 1: kernel −= xᵀ·∂L/∂emb, ∂L/∂emb by finite differences of the loops.
    x = rng.normal(size=(15, 4)).astype("float32")
    y = rng.integers(0, 3, size=15)
    y[12:] = [0, 0, 1]  # the last batch has a positive pair and a negative
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, use_bias=False)])
    model.compile(loss=TripletLoss(0.5), optimizer=keras.optimizers.SGD(1.0))
    kernel = start = ops.convert_to_numpy(model.layers[0].kernel).astype(np.float64)
    for s in [slice(0, 12), slice(12, 15)]:
        xs = x[s].astype(np.float64)
        g = reference.numeric_gradient(lambda e, s=s: reference.triplet(y[s], e, 0.5), xs @ kernel)
        kernel = kernel - xs.T @ g
    assert np.abs(kernel - start).max() > 0.05  # the steps move the kernel by more than atol
    model.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(ops.convert_to_numpy(model.layers[0].kernel), kernel, atol=1e-4)
