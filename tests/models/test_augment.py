"""Augmentation: identity at inference, bounded and seeded in training, sized to the image,
and saved models reload in safe mode with the block inside."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from models import embedding_net, small_cnn
from models.augment import POLICIES, augmentation


def dot_image(size: int, row: int, col: int) -> np.ndarray:
    """(1, size, size, 1) black image with one white 2×2 square at (row, col)."""
    image = np.zeros((1, size, size, 1), np.float32)
    image[0, row : row + 2, col : col + 2, 0] = 1.0
    return image


def centroid(image: np.ndarray) -> np.ndarray:
    """Intensity-weighted (row, col) centre of one (1, H, W, 1) image, by explicit loops."""
    total, rows, cols = 0.0, 0.0, 0.0
    for r in range(image.shape[1]):
        for c in range(image.shape[2]):
            v = float(image[0, r, c, 0])
            total, rows, cols = total + v, rows + v * r, cols + v * c
    return np.array([rows / total, cols / total])


def test_none_adds_nothing_and_unknown_policy_names_choices():
    assert augmentation("none") is None
    with pytest.raises(ValueError, match="augment must be one of none, light, strong; got 'x'"):
        augmentation("x")
    with pytest.raises(ValueError, match="augment must be one of"):
        embedding_net((8, 8, 1), dim=4, augment="heavy")


@pytest.mark.parametrize("policy", [p for p in POLICIES if p != "none"])
def test_identity_unless_training(policy):
    block = augmentation(policy, seed=0)
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(block(x, training=False)), x)
    assert not np.allclose(np.asarray(block(x, training=True)), x)


@pytest.mark.parametrize("size", [8, 28])
def test_shift_moves_the_centre_by_at_most_the_policy_fraction(size):
    """"light" on a dot near the centre: per axis, the centroid moves by at most t = shift·side
    (translation), plus what the θ = 10° turn about the image centre then adds: at most
    θ·(distance to the centre after the shift) <= θ·(r + √2·t)."""
    shift, degrees, _ = POLICIES["light"]
    block = augmentation("light", seed=3)
    row = size // 2 - 1
    x = dot_image(size, row, row)
    before = centroid(x)
    moves = []
    for _ in range(20):
        out = np.asarray(block(x, training=True))
        assert out.min() >= -1e-6 and out.max() <= 1.0 + 1e-6  # stays an image in [0, 1]
        moves.append(np.abs(centroid(out) - before))
    moves = np.array(moves)
    # Dot centre to rotation centre; either pixel-centre convention, (side-1)/2 or side/2.
    radius = max(np.hypot(*(before - (size - 1) / 2)), np.hypot(*(before - size / 2)))
    t = shift * size
    bound = t + np.radians(degrees) * (radius + np.sqrt(2) * t) + 1e-3
    assert moves.max() <= bound
    assert moves.max() > 0.05 * shift * size  # it does move


def test_same_seed_same_images_different_seed_different():
    x = np.random.default_rng(1).random((3, 28, 28, 1), dtype=np.float32)
    a = np.asarray(augmentation("strong", seed=7)(x, training=True))
    b = np.asarray(augmentation("strong", seed=7)(x, training=True))
    c = np.asarray(augmentation("strong", seed=8)(x, training=True))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_empty_border_is_black():
    """A white image shifted/rotated gains black (0) corners, never reflected strokes."""
    x = np.ones((8, 28, 28, 1), np.float32)
    out = np.asarray(augmentation("light", seed=0)(x, training=True))
    assert out.min() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "build",
    [
        lambda: small_cnn((8, 8, 1), 3, augment="light", seed=0),
        lambda: embedding_net((28, 28, 1), dim=None, augment="strong", seed=0),
    ],
)
def test_augmented_models_reload_in_safe_mode_and_infer_unchanged(tmp_path, build):
    model = build()
    shape = model.input_shape[1:]
    x = np.random.default_rng(2).random((4, *shape), dtype=np.float32)
    path = tmp_path / "model.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    first = np.asarray(model(x, training=False))
    np.testing.assert_allclose(np.asarray(again(x, training=False)), first, atol=1e-6)
    # Inference (training=False, as predict/evaluate and training.run.evaluate call it) has no
    # augmentation: repeated calls and Keras's predict agree exactly.
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), first)
    np.testing.assert_allclose(model.predict(x, verbose=0), first, atol=1e-6)
