"""Models: shapes over input sizes, float32 outputs under mixed precision, L2 penalty,
safe reload, and that the classifier actually learns (BatchNorm statistics included)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from models import conv_trunk, embedding_net, small_cnn

SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3), (16, 12, 1)]


@pytest.mark.parametrize("shape", SHAPES)
def test_small_cnn_logits_shape(shape):
    model = small_cnn(shape, 7)
    x = np.random.default_rng(0).random((3, *shape), dtype=np.float32)
    logits = model(x, training=False)
    assert tuple(logits.shape) == (3, 7)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"


@pytest.mark.parametrize("shape", SHAPES)
def test_embedding_net_returns_unit_vectors(shape):
    model = embedding_net(shape, dim=16)
    x = np.random.default_rng(1).random((5, *shape), dtype=np.float32)
    emb = np.asarray(model(x, training=False))
    assert emb.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("shape,size", [((8, 8, 1), 2), ((28, 28, 1), 3), ((32, 32, 3), 4)])
def test_trunk_pools_only_while_the_map_is_large_enough(shape, size):
    # 8 -> 4 -> 2 (no third pool: 2 < 4); 28 -> 14 -> 7 -> 3; 32 -> 16 -> 8 -> 4.
    trunk = conv_trunk(shape)
    pooled = [layer for layer in trunk.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert len(pooled) == (2 if size == 2 else 3)
    assert tuple(pooled[-1].output.shape[1:3]) == (size, size)
    assert tuple(trunk.output.shape) == (None, 128)


def test_flatten_pooling_keeps_the_last_map():
    assert tuple(conv_trunk((28, 28, 1), pooling="flatten").output.shape) == (None, 3 * 3 * 128)
    with pytest.raises(ValueError, match="pooling must be one of avg, flatten; got 'max'"):
        conv_trunk((28, 28, 1), pooling="max")


def test_outputs_stay_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        clf = small_cnn((8, 8, 1), 4)
        emb = embedding_net((8, 8, 1), dim=8)
        x = np.zeros((2, 8, 8, 1), np.float32)
        assert keras.backend.standardize_dtype(clf(x).dtype) == "float32"
        assert keras.backend.standardize_dtype(emb(x).dtype) == "float32"
        conv = clf.get_layer("trunk").get_layer("block1_conv1")
        assert conv.compute_dtype == "float16"  # the body really runs in half precision
    finally:
        keras.config.set_dtype_policy(previous)


def test_l2_adds_lambda_times_squared_kernel_norm():
    lam = 1e-3
    model = small_cnn((8, 8, 1), 3, l2=lam)
    model(np.zeros((1, 8, 8, 1), np.float32))
    kernels = [w for w in model.weights if w.path.endswith("kernel")]
    assert len(kernels) == 7  # 6 convs + the dense layer
    expected = sum(lam * float(np.sum(np.asarray(w, np.float64) ** 2)) for w in kernels)
    got = float(sum(np.asarray(loss) for loss in model.losses))
    assert got == pytest.approx(expected, rel=1e-5)
    assert small_cnn((8, 8, 1), 3).losses == []  # l2 = 0: no penalty terms at all


def test_embedding_net_l2_covers_trunk_and_projection():
    model = embedding_net((8, 8, 1), dim=8, l2=0.01)
    assert len(model.losses) == 7


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: small_cnn((4, 4, 1), 3), "height, width >= 8"),
        (lambda: small_cnn((8, 8), 3), "input_shape must be \\(height, width, channels\\)"),
        (lambda: small_cnn((8, 8, 1), 1), "num_classes must be an integer >= 2, got 1"),
        (lambda: small_cnn((8, 8, 1), 3, dropout=1.0), "dropout must be in \\[0, 1\\)"),
        (lambda: small_cnn((8, 8, 1), 3, l2=-1.0), "l2 must be a number >= 0, got -1.0"),
        (lambda: embedding_net((8, 8, 1), dim=1), "dim must be an integer >= 2 or None"),
    ],
)
def test_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    "build",
    [lambda: small_cnn((8, 8, 1), 3, l2=1e-4), lambda: embedding_net((8, 8, 1), dim=8, l2=1e-4)],
)
def test_reloads_in_safe_mode_without_custom_objects(tmp_path, build):
    model = build()
    x = np.random.default_rng(2).random((4, 8, 8, 1), dtype=np.float32)
    path = tmp_path / "model.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), atol=1e-6)


@pytest.mark.slow
def test_small_cnn_learns_digits_and_evaluates_well_in_inference_mode():
    """A few epochs on digits: validation accuracy (BatchNorm in inference mode) must be
    high too, which catches moving statistics that lag behind (momentum too close to 1)."""
    from training.data import classification_dataset, classification_steps_per_epoch, load_splits

    keras.utils.set_random_seed(0)
    splits = load_splits("digits", "classification", seed=0)
    model = small_cnn(splits.x_train.shape[1:], splits.num_classes)
    model.compile(
        keras.optimizers.Adam(2e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train = classification_dataset(splits.x_train, splits.y_train, 64, seed=0)
    steps = classification_steps_per_epoch(splits.y_train, 64)
    model.fit(train, epochs=4, steps_per_epoch=steps, verbose=0)
    _, accuracy = model.evaluate(splits.x_val, splits.y_val, verbose=0)
    assert accuracy >= 0.9
