"""tf.data pipelines: epoch coverage, seeded reshuffling, P×K batch structure and speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from training.data import (
    DataError,
    classification_dataset,
    classification_steps_per_epoch,
    pk_batch_indices,
    pk_dataset,
    pk_steps_per_epoch,
)


def toy(n=103, classes=5):
    # Image i is filled with the value i / n, so a batch tells which examples it holds.
    x = np.repeat((np.arange(n, dtype=np.float32) / n)[:, None, None, None], 64, axis=1)
    x = x.reshape(n, 8, 8, 1)
    y = (np.arange(n) % classes).astype(np.int32)
    return x, y


def ids(x_batch, n):
    return np.rint(np.asarray(x_batch)[:, 0, 0, 0] * n).astype(int)


def one_epoch(ds, n):
    return np.concatenate([ids(xb, n) for xb, _ in ds])


# --- classification_dataset ----------------------------------------------------------------


def epochs(ds, n, count, batches_per_epoch):
    """The first `count` epochs of an infinite pipeline, as lists of (ids, labels) batches."""
    items = list(ds.take(count * batches_per_epoch))
    return [items[e * batches_per_epoch : (e + 1) * batches_per_epoch] for e in range(count)]


def test_batches_cover_each_epoch_once_with_a_short_last_batch():
    x, y = toy()
    steps = classification_steps_per_epoch(y, 32)
    assert steps == 4
    for epoch in epochs(classification_dataset(x, y, 32, seed=0), 103, 2, steps):
        assert [len(b[1]) for b in epoch] == [32, 32, 32, 7]
        assert sorted(np.concatenate([ids(b[0], 103) for b in epoch])) == list(range(103))
    first = next(iter(classification_dataset(x, y, 32, seed=0)))
    assert first[0].dtype.name == "float32" and first[1].dtype.name == "int32"


def test_epoch_order_is_a_function_of_seed_and_epoch_only():
    """default_rng([seed, e]).permutation(N), cut into batches: by hand, and on resume."""
    x, y = toy()
    steps = classification_steps_per_epoch(y, 16)
    run = epochs(classification_dataset(x, y, 16, seed=3), 103, 3, steps)
    for e, epoch in enumerate(run):
        order = np.concatenate([ids(b[0], 103) for b in epoch])
        np.testing.assert_array_equal(order, np.random.default_rng([3, e]).permutation(103))
    assert not np.array_equal(*(np.concatenate([ids(b[0], 103) for b in ep]) for ep in run[:2]))
    resumed = epochs(classification_dataset(x, y, 16, seed=3, initial_epoch=2), 103, 1, steps)[0]
    for a, b in zip(resumed, run[2], strict=True):
        np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))


def test_labels_travel_with_their_images():
    x, y = toy()
    for xb, yb in classification_dataset(x, y, 10, seed=0).take(11):
        np.testing.assert_array_equal(np.asarray(yb), y[ids(xb, 103)])


def test_reweighting_starts_at_its_epoch():
    """Deferred re-weighting: weights 1 before the start epoch, w[y] from it on."""
    x, y = toy()
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
    steps = classification_steps_per_epoch(y, 50)
    run = epochs(classification_dataset(x, y, 50, seed=1, reweight=(1, w)), 103, 3, steps)
    for e, epoch in enumerate(run):
        for _, yb, wb in epoch:
            expected = np.ones(len(yb)) if e < 1 else w[np.asarray(yb)]
            np.testing.assert_array_equal(np.asarray(wb), expected)


def test_bad_batch_size():
    x, y = toy()
    with pytest.raises(DataError, match="batch_size must be a positive integer, got 0"):
        classification_dataset(x, y, 0, seed=0)


# --- P×K sampler --------------------------------------------------------------------------


def test_pk_steps_per_epoch():
    assert pk_steps_per_epoch(np.zeros(1000), 8, 4) == 31
    assert pk_steps_per_epoch(np.zeros(10), 8, 4) == 1  # never 0


@pytest.mark.parametrize("p,k", [(2, 2), (5, 4), (3, 7)])
def test_pk_batches_hold_p_classes_times_k_distinct_images(p, k):
    x, y = toy(n=200, classes=5)
    batches = pk_batch_indices(y, p=p, k=k, seed=0, epoch=0)
    assert batches.shape == (pk_steps_per_epoch(y, p, k), p * k)
    for batch in batches:
        assert len(set(batch.tolist())) == p * k  # no image twice in a batch
        groups = y[batch].reshape(p, k)
        assert np.all(groups == groups[:, :1])  # K of one class, then the next class
        assert len(set(groups[:, 0].tolist())) == p  # P distinct classes


def test_pk_epoch_with_all_classes_per_batch_sees_every_image_once():
    _, y = toy(n=200, classes=5)
    # P = C: every batch draws K=4 from each class; 10 batches × 4 = 40 = each class's size,
    # and classes are walked through a permutation, so each image appears exactly once.
    batches = pk_batch_indices(y, p=5, k=4, seed=1, epoch=0)
    assert batches.shape == (10, 20)
    np.testing.assert_array_equal(np.sort(batches.ravel()), np.arange(200))


def test_pk_dataset_matches_indices_and_resumes_exactly():
    x, y = toy(n=120, classes=6)
    p, k = 3, 4
    steps = pk_steps_per_epoch(y, p, k)
    expected = np.concatenate([pk_batch_indices(y, p=p, k=k, seed=7, epoch=e) for e in range(3)])
    ds = pk_dataset(x, y, p=p, k=k, seed=7).take(3 * steps)
    got = [(ids(xb, 120), np.asarray(yb)) for xb, yb in ds]
    np.testing.assert_array_equal(np.stack([g[0] for g in got]), expected)
    np.testing.assert_array_equal(np.stack([g[1] for g in got]), y[expected])
    resumed = pk_dataset(x, y, p=p, k=k, seed=7, initial_epoch=2).take(steps)
    resumed_ids = np.stack([ids(xb, 120) for xb, _ in resumed])
    np.testing.assert_array_equal(resumed_ids, expected[2 * steps :])
    other = pk_batch_indices(y, p=p, k=k, seed=8, epoch=0)
    assert not np.array_equal(other, expected[:steps])


def test_k_larger_than_a_class_names_the_class():
    _, y = toy(n=50, classes=5)
    y = y.copy()
    y[np.flatnonzero(y == 3)[:7]] = 0  # class 3 keeps 3 images
    with pytest.raises(DataError, match="k=4 images per class, but class 3 has only 3 training"):
        pk_batch_indices(y, p=2, k=4, seed=0, epoch=0)


@pytest.mark.parametrize(
    "p,k,message",
    [
        (6, 2, "p=6 classes per batch, but the training split has 5"),
        (2, 1, "k must be an integer >= 2"),
        (0, 4, "p must be an integer >= 1"),
    ],
)
def test_bad_p_or_k(p, k, message):
    x, y = toy()
    with pytest.raises(DataError, match=message):
        pk_dataset(x, y, p=p, k=k, seed=0)


@pytest.mark.slow
def test_pk_pipeline_is_much_faster_than_training_the_cnn():
    """The sampler must not be the bottleneck: ≥ 3× the speed of small_cnn train steps."""
    import keras

    from models import small_cnn

    rng = np.random.default_rng(0)
    x = rng.random((4000, 28, 28, 1), dtype=np.float32)
    y = (np.arange(4000) % 10).astype(np.int32)
    steps = 40
    ds = pk_dataset(x, y, p=8, k=4, seed=0)
    next(iter(ds))  # build the pipeline before timing
    start = time.perf_counter()
    for _ in ds.take(steps):
        pass
    pipeline_s = time.perf_counter() - start

    model = small_cnn((28, 28, 1), 10)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batch = next(iter(ds))
    model.train_on_batch(*batch)  # compile the step once
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(*batch)
    train_s = time.perf_counter() - start
    assert train_s >= 3 * pipeline_s, f"pipeline {pipeline_s:.3f}s vs train {train_s:.3f}s"
