"""Seeded batch augmentation (`augment=crop_flip|resized_crop`): parameters drawn per epoch in
NumPy, applied to whole batches; checked against explicit per-image NumPy loops."""

from __future__ import annotations

import numpy as np
import pytest

from training.data import transforms
from training.data.images import ArrayImages, View
from training.data.pipeline import classification_dataset


def crop_flip_loop(images: np.ndarray, params: np.ndarray, size: int, pad: int) -> np.ndarray:
    """Pad each image with zeros, cut size×size at (top, left), mirror when flip: one by one."""
    out = np.zeros((len(images), size, size, images.shape[-1]), np.float32)
    for b, (image, (top, left, _, _, flip)) in enumerate(zip(images, params, strict=True)):
        padded = np.zeros((image.shape[0] + 2 * pad, image.shape[1] + 2 * pad, image.shape[2]))
        padded[pad : pad + image.shape[0], pad : pad + image.shape[1]] = image
        crop = padded[int(top) : int(top) + size, int(left) : int(left) + size]
        out[b] = crop[:, ::-1] if flip else crop
    return out


def test_crop_flip_equals_the_per_image_loop():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(9, 12, 12, 3)).astype(np.uint8)
    params = transforms.augment_params("crop_flip", 3, 2, 9, 12, 12)
    got = np.asarray(transforms.train_batch(images, "crop_flip", 12, params))
    want = crop_flip_loop(images / np.float32(255), params, 12, transforms.CROP_PAD)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
    # Offsets cover 0..2·pad and both flips over many images.
    many = transforms.augment_params("crop_flip", 3, 2, 4000, 12, 12)
    assert set(np.unique(many[:, :2])) == set(range(2 * transforms.CROP_PAD + 1))
    assert 0.45 < many[:, 4].mean() < 0.55


def test_params_are_a_function_of_seed_epoch_and_index_only():
    a = transforms.augment_params("resized_crop", 5, 1, 300, 37, 32)
    b = transforms.augment_params("resized_crop", 5, 1, 300, 37, 32)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, transforms.augment_params("resized_crop", 5, 2, 300, 37, 32))
    assert not np.array_equal(a, transforms.augment_params("resized_crop", 6, 1, 300, 37, 32))


def test_resized_crop_boxes_respect_scale_aspect_and_bounds():
    side = 37
    p = transforms.augment_params("resized_crop", 0, 0, 5000, side, 32)
    top, left, h, w = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= side).all() and (left + w <= side).all()
    whole = (h == side) & (w == side)
    area = h * w / side**2
    # Rounding the sides to pixels moves area and aspect a little past the drawn range.
    assert (area[~whole] > 0.08 * 0.8).all()
    aspect = w[~whole] / h[~whole]
    assert ((aspect > 0.75 * 0.7) & (aspect < 4 / 3 / 0.7)).all()
    assert 0.2 < np.median(area) < 0.8  # uniform in [0.08, 1] before rejection: median ~0.54


def test_resized_crop_of_the_whole_image_at_its_own_size_is_the_image():
    rng = np.random.default_rng(1)
    images = rng.random((3, 16, 16, 1)).astype(np.float32)
    params = np.array([[0, 0, 16, 16, 0], [0, 0, 16, 16, 1], [0, 0, 16, 16, 0]], np.float32)
    # train_batch resizes to the stored side (⌈16·256/224⌉ = 19) first, so test the crop op.
    got = np.asarray(transforms._resized_crop(images, 16, params))
    want = images.copy()
    want[1] = images[1, :, ::-1]  # its flip is set: the box runs right to left
    np.testing.assert_allclose(got, want, atol=1e-6)
    # A box of one pixel row/col block upsampled: every output pixel is that pixel.
    one = np.array([[5, 7, 1, 1, 0]] * 3, np.float32)
    got = np.asarray(transforms._resized_crop(images, 4, one))
    for b in range(3):
        np.testing.assert_allclose(got[b], np.full((4, 4, 1), images[b, 5, 7, 0]), atol=1e-6)


@pytest.mark.parametrize("policy", ["crop_flip", "resized_crop"])
def test_pipeline_batches_apply_each_images_own_params(policy):
    """The batch an image lands in does not change its view: the epoch's params row i."""
    n, side = 40, 16
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(n, side, side, 1)).astype(np.uint8)
    images = ArrayImages(x).with_view(View(policy, side))
    y = np.zeros(n, np.int32)
    ds = classification_dataset(images, y, 7, seed=4, initial_epoch=3)
    order = np.random.default_rng([4, 3]).permutation(n)
    got = np.concatenate([np.asarray(b) for b, _ in ds.take(-(-n // 7))])
    params = transforms.augment_params(policy, 4, 3, n, images.stored, side)[order]
    want = np.asarray(transforms.train_batch(x[order], policy, side, params))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    if policy == "crop_flip":
        np.testing.assert_allclose(got, crop_flip_loop(x[order] / np.float32(255), params, side,
                                                       transforms.CROP_PAD), atol=1e-7)


def test_per_image_crop_flip_equals_the_loop():
    """Decoded files crop per image (a slice) inside the decode map: same pixels as the loop."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(6, 10, 10, 3)).astype(np.uint8)
    params = transforms.augment_params("crop_flip", 1, 0, 6, 10, 10)
    params[:2, 4] = (1, 0)  # both flips appear
    got = np.stack([np.asarray(transforms.crop_flip_one(img, 10, row))
                    for img, row in zip(images, params, strict=True)])
    want = crop_flip_loop(images.astype(np.float32), params, 10, transforms.CROP_PAD)
    np.testing.assert_array_equal(got, want)
