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
