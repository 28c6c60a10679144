"""Ops inside tf.data: per image, decode, channel conversion and resize; per batch, the seeded
augmentations that stay out of the logged model (``augment=crop_flip|resized_crop``).

Augmentation is drawn in NumPy per epoch (``augment_params``: image i's crop box and flip in
epoch e, a function of (seed, e, i) alone) and applied to whole batches (``train_batch``: two
gathers or one crop_and_resize, and one select), so an image's crop does not depend on which
worker, thread or resumed process read it, and the graph has no per-image random ops.

Sizes: the model sees ``image_size`` S. The cache holds images at ``stored_size(policy, S)``:
S itself, except for ``resized_crop``, whose test view is "resize to 256/224·S, center-crop S"
(the metric-learning papers' 256 → 224), so it stores ⌈S·256/224⌉ and crops from it.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

# Augmentations applied in tf.data (the others, light/strong, are layers inside the model).
PIPELINE_POLICIES = ("crop_flip", "resized_crop")
CROP_PAD = 4  # CIFAR: pad 4 px each side, random S×S crop (He et al. 2016)
RRC_SCALE = (0.08, 1.0)  # random-resized-crop area range and aspect range (Szegedy et al.)
RRC_RATIO = (3 / 4, 4 / 3)
TEST_RESIZE = 256 / 224  # the papers' test view: resize 256, center-crop 224


def stored_size(policy: str, image_size: int) -> int:
    """Side of the cached images for `policy` at model input `image_size`."""
    return math.ceil(image_size * TEST_RESIZE) if policy == "resized_crop" else image_size


def to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """uint8 (h, w, c0) with c0 in 1..4 → (h, w, channels): RGB(A) → gray by luminance,
    gray → RGB by tiling, alpha dropped. A gray image kept gray is returned bit-exact."""
    c0 = tf.shape(image)[-1]
    if channels == 1:
        image = tf.cond(c0 >= 3, lambda: tf.image.rgb_to_grayscale(image[..., :3]),
                        lambda: image[..., :1])
    else:
        image = tf.cond(c0 >= 3, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3]))
    image.set_shape([None, None, channels])
    return image


def resize_uint8(image: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 (h, w, c) → uint8 (size, size, c), bilinear like Keras's
    `image_dataset_from_directory`; an image already size×size is returned untouched (so a
    lossless file decodes to exactly the pixels an IDX file holds)."""
    same = tf.reduce_all(tf.shape(image)[:2] == size)

    def resized():
        out = tf.image.resize(image, [size, size], method="bilinear")
        return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)

    out = tf.cond(same, lambda: image, resized)
    out.set_shape([size, size, image.shape[-1]])
    return out


def decode_bytes(raw: tf.Tensor, size: int, channels: int) -> tf.Tensor:
    """Encoded JPEG/PNG/BMP/GIF bytes → uint8 (size, size, channels). GIFs give their first
    frame. Raises InvalidArgumentError on a corrupt or non-image file (the cache pass
    catches it per image and names the file)."""
    if channels == 3:  # every format's decoder converts to RGB itself: no branch per image
        image = tf.io.decode_image(raw, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return resize_uint8(image, size)
    # BMP and GIF decoders take no channels=1: decode as stored, then convert.
    image = tf.io.decode_image(raw, channels=0, expand_animations=False)
    return resize_uint8(to_channels(image, channels), size)


def to_float(images: tf.Tensor) -> tf.Tensor:
    """uint8 → float32 in [0, 1] (x / 255, correctly rounded as NumPy's float32 division);
    float32 passes through unchanged."""
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 255.0
    return images


def _resize_float(images: tf.Tensor, size: int) -> tf.Tensor:
    """float (…, h, w, c) → (…, size, size, c); untouched when already that size."""
    if images.shape[-3] == size and images.shape[-2] == size:
        return images
    return tf.image.resize(images, [size, size], method="bilinear")


def _center_crop(images: tf.Tensor, size: int) -> tf.Tensor:
    height, width = images.shape[-3], images.shape[-2]
    top, left = (height - size) // 2, (width - size) // 2
    return images[..., top : top + size, left : left + size, :]


def test_view(images: tf.Tensor, policy: str, image_size: int) -> tf.Tensor:
    """The deterministic view of val/test images (and of the logged model's inputs' scale):
    float32 (…, S, S, C). `resized_crop`: resize to ⌈S·256/224⌉, center-crop S."""
    images = to_float(images)
    stored = stored_size(policy, image_size)
    images = _resize_float(images, stored)
    return _center_crop(images, image_size) if stored != image_size else images


# A separate stream from the sampler's `default_rng([seed, epoch])` (training.data.pipeline).
AUGMENT_STREAM = 0xA06


def augment_params(policy: str, seed: int, epoch: int, n: int, stored: int,
                   size: int) -> np.ndarray:
    """Every image's crop box and flip for one epoch: float32 (n, 5) rows of (top, left,
    height, width, flip), row i for image i, in pixels of the stored image (crop_flip: of
    the padded one). A pure function of (seed, epoch): which worker, thread or resumed process
    reads image i in epoch e, it gets row i. Drawn in NumPy once per epoch (n randoms, ~1 ms
    per 100k images) so the graph needs no per-image seed ops."""
    rng = np.random.default_rng([seed, epoch, AUGMENT_STREAM])
    out = np.zeros((n, 5), np.float32)
    if policy == "crop_flip":
        out[:, :2] = rng.integers(0, 2 * CROP_PAD + 1, size=(n, 2))
        out[:, 2:4] = size
    elif policy == "resized_crop":
        out[:, :4] = _rrc_boxes(rng, n, stored)
    out[:, 4] = rng.random(n) < 0.5
    return out


def _rrc_boxes(rng: np.random.Generator, n: int, side: int, attempts: int = 10) -> np.ndarray:
    """Szegedy et al.'s random-resized-crop boxes on a side×side image: area a fraction of
    RRC_SCALE, aspect log-uniform in RRC_RATIO; the first of `attempts` draws that fits, else
    the whole image (torchvision's scheme, vectorised over images × attempts)."""
    area = side * side * rng.uniform(*RRC_SCALE, size=(n, attempts))
    ratio = np.exp(rng.uniform(np.log(RRC_RATIO[0]), np.log(RRC_RATIO[1]), size=(n, attempts)))
    w = np.round(np.sqrt(area * ratio))
    h = np.round(np.sqrt(area / ratio))
    fits = (w >= 1) & (h >= 1) & (w <= side) & (h <= side)
    first = np.argmax(fits, axis=1)
    rows = np.arange(n)
    h = np.where(fits.any(axis=1), h[rows, first], side)
    w = np.where(fits.any(axis=1), w[rows, first], side)
    top = np.floor(rng.random(n) * (side - h + 1))
    left = np.floor(rng.random(n) * (side - w + 1))
    return np.stack([top, left, h, w], axis=1)


def _crop_flip(images: tf.Tensor, size: int, params: tf.Tensor) -> tf.Tensor:
    """(B, S, S, C), any dtype → pad 4, crop S×S at each row's (top, left), mirrored where its
    flip is set: one gather of B·S·S pixels from the flattened padded batch (a per-axis
    gather pair plus a tf.where flip took 3x as long on CPU)."""
    padded = tf.pad(images, [[0, 0], [CROP_PAD, CROP_PAD], [CROP_PAD, CROP_PAD], [0, 0]])
    height, width, channels = padded.shape[1], padded.shape[2], padded.shape[3]
    offsets = tf.cast(params[:, :2], tf.int32)
    steps = tf.range(size, dtype=tf.int32)
    rows = offsets[:, :1] + steps  # (B, S)
    cols = offsets[:, 1:2] + tf.where(params[:, 4:5] > 0.5, size - 1 - steps, steps)
    first = tf.range(tf.shape(images)[0], dtype=tf.int32)[:, None, None] * (height * width)
    pixel = first + rows[:, :, None] * width + cols[:, None, :]  # (B, S, S) flat positions
    return tf.gather(tf.reshape(padded, [-1, channels]), pixel)


def crop_flip_one(image: tf.Tensor, size: int, params: tf.Tensor) -> tf.Tensor:
    """One image (S, S, C) and its params row (5,) → the same crop and flip as `_crop_flip`,
    by slicing: inside a per-image decode map (files) a slice and a reverse cost less than
    the batch's gather."""
    padded = tf.pad(image, [[CROP_PAD, CROP_PAD], [CROP_PAD, CROP_PAD], [0, 0]])
    offsets = tf.cast(params[:2], tf.int32)
    crop = tf.slice(padded, tf.concat([offsets, [0]], axis=0), [size, size, image.shape[-1]])
    return tf.cond(params[4] > 0.5, lambda: tf.reverse(crop, axis=[1]), lambda: crop)


def _resized_crop(images: tf.Tensor, size: int, params: tf.Tensor) -> tf.Tensor:
    """(B, H, H, C) → each row's box resized to S×S, bilinear, in one crop_and_resize (its
    samples span the box's first to last pixel centre); a flipped row's box runs right to
    left, which crop_and_resize samples mirrored."""
    last = tf.cast(tf.shape(images)[1] - 1, tf.float32)
    top, left, height, width = (params[:, k] for k in range(4))
    right = left + width - 1
    flip = params[:, 4] > 0.5
    x1, x2 = tf.where(flip, right, left), tf.where(flip, left, right)
    boxes = tf.stack([top, x1, top + height - 1, x2], axis=1) / last
    index = tf.range(tf.shape(images)[0], dtype=tf.int32)
    return tf.image.crop_and_resize(images, boxes, index, [size, size], method="bilinear")


def train_batch(images: tf.Tensor, policy: str, image_size: int, params: tf.Tensor) -> tf.Tensor:
    """A training batch (B, h, w, C) → float32 (B, S, S, C), augmented by `policy` with each
    image's row of `augment_params` (B, 5); a policy that is not a pipeline policy gives the
    test view."""
    if policy not in PIPELINE_POLICIES:
        return test_view(images, policy, image_size)
    stored = stored_size(policy, image_size)
    if policy == "crop_flip":
        if images.shape[1] == images.shape[2] == stored:  # crop the uint8 pixels: 4x less to move
            return to_float(_crop_flip(images, image_size, params))
        return _crop_flip(_resize_float(to_float(images), stored), image_size, params)
    return _resized_crop(_resize_float(to_float(images), stored), image_size, params)
