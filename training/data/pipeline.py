"""tf.data input pipelines: plain shuffled batches, and P×K batches for metric losses.

The samplers draw index batches in NumPy from (seed, epoch) alone (microseconds per batch),
and so does the augmentation (each image's crop box and flip, ``transforms.augment_params``);
tf.data then reads each batch's images from wherever the split keeps them
(``training.data.images``: a gather from RAM, a pread from the disk cache, or a parallel
decode of the files), applies the view to the whole batch (``transforms.train_batch``: to
float, resize, crop/flip of ``augment=crop_flip|resized_crop``) and prefetches. Several batches are read
in parallel (AUTOTUNE) and come out in order, so what a step sees is a function of
(seed, epoch, index) only.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from training.data import transforms
from training.data.images import Images, as_images
from training.errors import DataError


def view_reader(images: Images):
    """(raw batch (B, ...), float32 params (B, 5)) → float32 (B, S, S, C): the training view
    (``transforms.train_batch``), or feature rows as they are."""
    policy, size = images.view.policy, images.image_size

    def view(raw, params):
        if not getattr(images, "is_image", True):  # feature rows, not images
            return transforms.to_float(raw)
        return transforms.train_batch(raw, policy, size, params)

    return view


def _epoch_params(images: Images, seed: int):
    """epoch → float32 (N, 5): every image's augmentation in that epoch (zeros without one)."""
    policy, n = images.view.policy, len(images)
    if not getattr(images, "is_image", True) or policy not in transforms.PIPELINE_POLICIES:
        return lambda epoch: np.zeros((n, 5), np.float32)
    return lambda epoch: transforms.augment_params(policy, seed, epoch, n, images.stored,
                                                   images.image_size)


def _batches(images: Images, epoch_indices, batch_size: int, seed: int, initial_epoch: int):
    """Infinite (float32 images (B, S, S, C), int64 indices (B,), epoch) batches: epoch e
    reads `epoch_indices(e)` (int64, in order) cut into batches of `batch_size`, the last of
    an epoch possibly smaller.

    In-RAM and disk-cache collections gather whole batches (one gather or one pread loop
    each). File collections decode per image in a parallel map that spans the whole epoch, so
    the decoders never wait at a batch boundary (a per-batch map_fn ran ~2.6x slower than
    Keras's per-image pipeline). Either way the view (float, crop, flip) is applied per batch
    with each image's precomputed parameters."""
    view, epoch_params = view_reader(images), _epoch_params(images, seed)
    if images.batched:
        def index_batches():
            epoch = initial_epoch
            while True:
                order, params = epoch_indices(epoch), epoch_params(epoch)
                for start in range(0, len(order), batch_size):
                    chunk = order[start : start + batch_size]
                    yield chunk, epoch, params[chunk]
                epoch += 1

        # Unknown batch size: one trace serves the short last batch too.
        spec = (tf.TensorSpec((None,), tf.int64), tf.TensorSpec((), tf.int64),
                tf.TensorSpec((None, 5), tf.float32))
        ds = tf.data.Dataset.from_generator(index_batches, output_signature=spec)
        return ds.map(lambda i, e, p: (view(images.load_batch(i), p), i, e),
                      num_parallel_calls=tf.data.AUTOTUNE)

    def epoch_order(epoch):
        order = np.asarray(epoch_indices(int(epoch)), np.int64)
        return order, epoch_params(int(epoch))[order]

    # crop_flip on decoded files: cropped and flipped per image inside the decode map (a slice
    # and a reverse, as Keras's own per-image pipeline does), so the batch only turns to float.
    per_image = (images.view.policy == "crop_flip" and getattr(images, "is_image", True)
                 and images.stored == images.image_size)
    size = images.image_size

    def element(i, p):
        raw = images.load_one(i)
        return (transforms.crop_flip_one(raw, size, p) if per_image else raw), i, p

    def batch_view(raw, p):
        return transforms.to_float(raw) if per_image else view(raw, p)

    def epoch_batches(epoch):
        order, params = tf.numpy_function(epoch_order, [epoch], (tf.int64, tf.float32),
                                          stateful=False)
        order.set_shape([None])
        params.set_shape([None, 5])
        ds = tf.data.Dataset.from_tensor_slices((order, params))
        ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch_size).map(lambda raw, i, p: (batch_view(raw, p), i, epoch),
                                        num_parallel_calls=tf.data.AUTOTUNE)

    return tf.data.Dataset.range(initial_epoch, np.iinfo(np.int64).max).flat_map(epoch_batches)


def classification_steps_per_epoch(y, batch_size: int) -> int:
    """Batches per epoch: ceil(N / batch_size) (the last one smaller)."""
    return int(np.ceil(len(y) / batch_size))


def classification_dataset(
    x, y, batch_size: int, *, seed: int, initial_epoch: int = 0, reweight=None,
    epoch_indices=None,
) -> tf.data.Dataset:
    """Infinite shuffled batches (pair with `steps_per_epoch=classification_steps_per_epoch`).

    Epoch e's batches are a pure function of (seed, e), never of how many epochs this process
    has already run: `default_rng([seed, e]).permutation(N)` cut into ceil(N / batch_size)
    batches. A run resumed at epoch E with `initial_epoch=E` sees exactly the batches of an
    uninterrupted run (the sampler "state" is just (seed, epoch)).

    Args:
        x: the images (``training.data.images.Images``, or a float32 (N, H, W, C) array in
            [0, 1]); y: int32 (N,).
        batch_size: images per batch; the last batch of an epoch may be smaller.
        seed: sampler seed.
        initial_epoch: first epoch (0-based) the dataset produces.
        reweight: None, or (start_epoch, float32 (C,) class weights): from that 0-based
            epoch on, batches carry sample weights w[y] (deferred re-weighting), before it
            weights of 1. With it, elements are (images, labels, weights).
        epoch_indices: None (the permutation above), or epoch → int64 indices of that
            epoch, a pure function of (seed, epoch) (`training.data.samplers`: class-balanced,
            square-root, progressive).

    Returns:
        Dataset of (float32 (B, H, W, C), int32 (B,)[, float32 (B,)]).
    """
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(x) != len(y):
        raise DataError(f"x has {len(x)} images but y has {len(y)} labels")
    n = len(y)
    labels = tf.constant(np.asarray(y, np.int32))
    if epoch_indices is None:
        epoch_indices = lambda e: np.random.default_rng([seed, e]).permutation(n)  # noqa: E731
    ds = _batches(as_images(x), epoch_indices, batch_size, seed, initial_epoch)
    if reweight is None:
        ds = ds.map(lambda x, i, e: (x, tf.gather(labels, i)))
    else:
        start_epoch, class_weights = reweight
        table = tf.constant(np.asarray(class_weights, np.float32))

        def weighted(x, i, e):
            y_batch = tf.gather(labels, i)
            w = tf.where(e >= start_epoch, tf.gather(table, y_batch), tf.ones_like(i, tf.float32))
            return x, y_batch, w

        ds = ds.map(weighted)
    return ds.prefetch(tf.data.AUTOTUNE)


def pk_steps_per_epoch(y, p: int, k: int) -> int:
    """Batches that make one pass over ``y`` on average: max(1, len(y) // (p*k))."""
    return max(1, len(y) // (p * k))


def _check_pk(y: np.ndarray, p: int, k: int) -> None:
    """DataError unless P distinct classes each with >= K images exist."""
    for name, value, low in (("p", p, 1), ("k", k, 2)):
        if not (isinstance(value, (int, np.integer)) and value >= low):
            raise DataError(
                f"{name} must be an integer >= {low} (P classes × K images per batch, K >= 2 "
                f"so every anchor has a positive); got {name}={value!r}"
            )
    counts = np.bincount(y)
    classes = np.flatnonzero(counts)
    if p > classes.size:
        raise DataError(f"p={p} classes per batch, but the training split has {classes.size}")
    small = [int(c) for c in classes if counts[c] < k]
    if small:
        c = small[0]
        raise DataError(
            f"k={k} images per class, but class {c} has only {counts[c]} training images "
            f"({len(small)} class(es) below k); use k <= {int(counts[classes].min())}"
        )


def pk_batch_indices(y, *, p: int, k: int, seed: int, epoch: int) -> np.ndarray:
    """Index batches of one sampler epoch: int64 (pk_steps_per_epoch, p*k).

    Each batch holds P distinct classes drawn uniformly, K images of each, without
    replacement inside a batch. Each class is walked through a fresh random permutation
    K at a time (re-permuted when fewer than K are left), so an epoch sees each image
    about once. Depends only on (seed, epoch), so a resumed run can regenerate epoch E.
    """
    y = np.asarray(y)
    _check_pk(y, p, k)
    rng = np.random.default_rng([seed, epoch])
    classes = np.flatnonzero(np.bincount(y))
    members = {int(c): np.flatnonzero(y == c) for c in classes}
    order = {c: rng.permutation(m) for c, m in members.items()}
    cursor = dict.fromkeys(members, 0)
    steps = pk_steps_per_epoch(y, p, k)
    batches = np.empty((steps, p * k), dtype=np.int64)
    for step in range(steps):
        for slot, c in enumerate(rng.choice(classes, size=p, replace=False).tolist()):
            if cursor[c] + k > len(order[c]):
                order[c], cursor[c] = rng.permutation(members[c]), 0
            batches[step, slot * k : (slot + 1) * k] = order[c][cursor[c] : cursor[c] + k]
            cursor[c] += k
    return batches


def pk_dataset(x, y, *, p: int, k: int, seed: int, initial_epoch: int = 0) -> tf.data.Dataset:
    """Infinite P×K batches (pair with ``steps_per_epoch=pk_steps_per_epoch(y, p, k)``).

    Args:
        x: the images (``Images`` or a float32 (N, H, W, C) array); y: int32 (N,).
        p: classes per batch; k: images per class (>= 2). Batch size = p*k.
        seed: sampler seed.
        initial_epoch: first sampler epoch to produce; resuming at epoch E with
            ``initial_epoch=E`` yields exactly the batches an uninterrupted run would see.

    Returns:
        Dataset of (float32 (p*k, H, W, C), int32 (p*k,)), labels grouped K by K.

    Raises:
        DataError: p larger than the number of classes, k < 2, or a class with < k images.
    """
    y = np.asarray(y, dtype=np.int32)
    _check_pk(y, p, k)
    labels = tf.constant(y)

    def epoch_indices(epoch):
        return pk_batch_indices(y, p=p, k=k, seed=seed, epoch=epoch).reshape(-1)

    ds = _batches(as_images(x), epoch_indices, p * k, seed, initial_epoch)
    ds = ds.map(lambda x, i, e: (x, tf.gather(labels, i)))
    return ds.prefetch(tf.data.AUTOTUNE)
