"""Per-image ops inside tf.data: decode, channel conversion, resize, and the seeded
augmentations that stay out of the logged model (``augment=crop_flip|resized_crop``).

Every random op is stateless, seeded by (run seed, epoch, image index) through
``tf.random.experimental.stateless_fold_in``, so an image's crop and flip in epoch e do not
depend on which worker, thread or resumed process drew it: a resumed run replays the
uninterrupted one exactly.

Sizes: the model sees ``image_size`` S. The cache holds images at ``stored_size(policy, S)``:
S itself, except for ``resized_crop``, whose test view is "resize to 256/224·S, center-crop S"
(the metric-learning papers' 256 → 224), so it stores ⌈S·256/224⌉ and crops from it.
"""

from __future__ import annotations

import math

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


def element_seed(seed: int, epoch: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """The stateless seed (2,) of one image in one epoch: a pure function of the three."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64))


def _crop_flip(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, 2)
    padded = tf.pad(image, [[CROP_PAD, CROP_PAD], [CROP_PAD, CROP_PAD], [0, 0]])
    crop = tf.image.stateless_random_crop(padded, [size, size, image.shape[-1]], seed=seeds[0])
    return tf.image.stateless_random_flip_left_right(crop, seed=seeds[1])


def _resized_crop(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, 2)
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seeds[0],
        area_range=RRC_SCALE, aspect_ratio_range=RRC_RATIO, max_attempts=10,
        use_image_if_no_bounding_boxes=True, min_object_covered=0.0)
    crop = tf.slice(image, begin, extent)
    crop = tf.image.resize(crop, [size, size], method="bilinear")
    return tf.image.stateless_random_flip_left_right(crop, seed=seeds[1])


def train_view(image: tf.Tensor, policy: str, image_size: int, seed: tf.Tensor) -> tf.Tensor:
    """One training image (h, w, C) → float32 (S, S, C), augmented by `policy` with the
    stateless `seed` (2,); a policy that is not a pipeline policy gives the test view."""
    image = to_float(image)
    stored = stored_size(policy, image_size)
    image = _resize_float(image, stored)
    if policy == "crop_flip":
        return _crop_flip(image, image_size, seed)
    if policy == "resized_crop":
        return _resized_crop(image, image_size, seed)
    return _center_crop(image, image_size) if stored != image_size else image
