"""PolyLoss (Poly-1) against the explicit loop, Keras's sparse CE and its analytic gradient."""

import inspect
import math

import keras
import numpy as np
import pytest
import reference
from keras import ops

import losses
from losses import PolyLoss

EPSILONS = [-1.0, -0.5, 0.0, 1.0, 2.0, 5.0]


def logits_and_labels(rng, batch=16, classes=4, scale=3.0):
    return rng.normal(scale=scale, size=(batch, classes)).astype("float32"), rng.integers(
        0, classes, size=batch
    )


@pytest.mark.parametrize("epsilon", EPSILONS)
def test_matches_reference(epsilon, rng):
    for _ in range(2):
        logits, labels = logits_and_labels(rng)
        got = ops.convert_to_numpy(PolyLoss(epsilon, reduction="none")(labels, logits))
        want = reference.poly1(labels, logits, epsilon)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_epsilon_zero_equals_keras_sparse_crossentropy(rng):
    logits, labels = logits_and_labels(rng, scale=10.0)
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(float(PolyLoss(0.0)(labels, logits)), float(keras_ce), rtol=1e-6)


@pytest.mark.parametrize("epsilon", [-1.0, 1.0, 3.0])
def test_is_keras_sparse_crossentropy_plus_epsilon_times_one_minus_p(epsilon, rng):
    logits, labels = logits_and_labels(rng)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")(
        labels, logits
    )
    p = np.take_along_axis(ops.convert_to_numpy(ops.softmax(logits)), labels[:, None], 1)[:, 0]
    want = ops.convert_to_numpy(ce) + epsilon * (1.0 - p)
    got = ops.convert_to_numpy(PolyLoss(epsilon, reduction="none")(labels, logits))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_hand_computed_value():
    # Two equal logits: p_y = 1/2, loss = log 2 + ε/2.
    zeros = np.zeros((1, 2), "float32")
    for epsilon in [1.0, -1.0, 4.0]:
        got = float(PolyLoss(epsilon)(np.array([0]), zeros))
        assert got == pytest.approx(math.log(2) + epsilon / 2, rel=1e-6)


@pytest.mark.parametrize("epsilon", [-1.0, 0.0, 2.0])
def test_gradient_is_analytic(epsilon, rng, grad):
    # d/dz_c = (p_c − [c = y]) · (1 + ε·p_y): CE's gradient scaled by 1 + ε·p_y.
    logits, labels = logits_and_labels(rng, batch=6)
    _, g = grad(lambda z: ops.sum(PolyLoss(epsilon, reduction="none")(labels, z)), logits)
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p_y = p[np.arange(6), labels]
    want = (p - np.eye(4)[labels]) * (1 + epsilon * p_y)[:, None]
    np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-6)


def test_label_layouts_and_probabilities_agree(rng):
    logits, labels = logits_and_labels(rng)
    loss = PolyLoss(2.0)
    base = float(loss(labels, logits))
    np.testing.assert_allclose(float(loss(labels[:, None], logits)), base, rtol=1e-6)
    np.testing.assert_allclose(float(loss(np.eye(4)[labels], logits)), base, rtol=1e-6)
    probs = ops.convert_to_numpy(ops.softmax(logits))
    np.testing.assert_allclose(
        float(PolyLoss(2.0, from_logits=False)(labels, probs)), base, rtol=1e-4
    )


def test_sample_weight_and_reduction_none(rng):
    logits, labels = logits_and_labels(rng)
    per_sample = ops.convert_to_numpy(PolyLoss(reduction="none")(labels, logits))
    assert per_sample.shape == (16,)
    sw = rng.uniform(size=16).astype("float32")
    got = float(PolyLoss()(labels, logits, sample_weight=sw))
    np.testing.assert_allclose(got, np.sum(per_sample * sw) / 16, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_are_computed_in_float32(dtype, rng):
    logits, labels = logits_and_labels(rng)
    loss = PolyLoss(1.0)
    low = ops.cast(logits, dtype)
    got, want = loss(labels, low), loss(labels, ops.cast(low, "float32"))
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
    per_sample = loss.call(ops.convert_to_tensor(labels), low)
    assert keras.backend.standardize_dtype(per_sample.dtype) == "float32"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "one", None])
def test_invalid_epsilon(bad):
    with pytest.raises(ValueError, match=f"epsilon={bad!r}"):
        PolyLoss(bad)


@pytest.mark.parametrize("epsilon", EPSILONS)
def test_finite_value_and_gradient_at_extremes(epsilon, grad):
    logits = np.array(
        [[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0], [1e4, 1e4, 1e4], [-1e4, -1e4, 1e4], [30, 0, 0]],
        "float32",
    )
    labels = np.array([0, 0, 1, 2, 0])
    loss = PolyLoss(epsilon, reduction="none")
    value, g = grad(lambda z: ops.sum(loss(labels, z)), logits)
    per_sample = ops.convert_to_numpy(loss(labels, logits))
    assert np.all(np.isfinite(per_sample)) and np.all(np.isfinite(g))
    assert per_sample[0] == pytest.approx(0.0, abs=1e-6)  # p_y = 1
    assert per_sample[1] == pytest.approx(2e4 + epsilon, rel=1e-6)  # p_y = 0
    assert per_sample[2] == pytest.approx(math.log(3) + epsilon * 2 / 3, rel=1e-5)


def test_config_round_trip():
    loss = PolyLoss(epsilon=-0.5, from_logits=False)
    config = loss.get_config()
    init_args = set(inspect.signature(PolyLoss.__init__).parameters) - {"self"}
    assert set(config) - {"dtype"} == init_args - {"dtype"}
    assert PolyLoss.from_config(config).get_config() == config
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is PolyLoss and restored.get_config() == config


@pytest.mark.slow
def test_compile_fit_save_and_reload_without_custom_objects(tmp_path, rng):
    x = rng.normal(size=(24, 4)).astype("float32")
    y = rng.integers(0, 3, size=24)
    loss = PolyLoss(epsilon=2.0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=loss)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(reloaded.loss) is PolyLoss
    assert reloaded.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(
        reloaded.evaluate(x, y, batch_size=24, verbose=0),
        model.evaluate(x, y, batch_size=24, verbose=0),
        rtol=1e-5,
    )


def test_registry():
    loss = losses.get("poly", epsilon=-0.5)
    assert type(loss) is PolyLoss and loss.epsilon == -0.5
    entry = losses.spec("poly")
    assert entry.needs is None and entry.output == "logits"
    assert entry.search_space() == {"epsilon": ("float", -1.0, 5.0)}
    assert type(entry.build({"epsilon": 3.0})) is PolyLoss
    # The registry keeps configs at ε >= −1, where the loss still falls as p_y → 1.
    with pytest.raises(ValueError, match="epsilon=-2.0 is out of range"):
        entry.build({"epsilon": -2.0})
