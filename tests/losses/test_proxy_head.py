"""ProxyHead: cosines against the explicit loop, float32 under mixed precision, config, and
end to end: a model with the head trains its proxies and reloads from .keras."""

import inspect
import os

import keras
import numpy as np
import pytest
import reference
from keras import ops

import losses
from losses import ProxyHead


def _numpy(x):
    return ops.convert_to_numpy(x)


def test_cosines_match_reference(rng):
    head = ProxyHead(5)
    emb = rng.normal(size=(7, 4)).astype("float32")
    got = _numpy(head(emb))
    assert got.shape == (7, 5)
    want = reference.proxy_cosines(emb, _numpy(head.proxies))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_input_scale_does_not_matter_and_zero_input_is_finite(rng, grad):
    head = ProxyHead(3)
    emb = rng.normal(size=(4, 6)).astype("float32")
    np.testing.assert_allclose(_numpy(head(emb)), _numpy(head(100.0 * emb)), rtol=1e-5, atol=1e-6)
    zeros = np.zeros((2, 6), "float32")
    np.testing.assert_array_equal(_numpy(head(zeros)), np.zeros((2, 3)))
    value, g = grad(lambda x: ops.sum(head(x)), zeros)
    assert np.isfinite(value) and np.all(np.isfinite(g))


def test_default_initializer_is_the_proxy_anchor_authors(rng):
    # kaiming_normal_(mode="fan_out") on their (C, D) proxies: std sqrt(2 / C).
    head = ProxyHead(8)
    head.build((None, 512))
    proxies = _numpy(head.proxies)
    assert proxies.shape == (512, 8)
    assert np.std(proxies) == pytest.approx(np.sqrt(2 / 8), rel=0.05)


def test_float32_under_mixed_precision(rng):
    emb = rng.normal(size=(4, 6)).astype("float32")
    reference_head = ProxyHead(3)
    want = _numpy(reference_head(emb))
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        implicit = ProxyHead(3)  # dtype defaults to float32, whatever the global policy
        explicit = ProxyHead(3, dtype="mixed_bfloat16")  # still computes in float32
        for head in (implicit, explicit):
            out = head(ops.cast(emb, "float16"))
            assert keras.backend.standardize_dtype(out.dtype) == "float32"
            head.set_weights(reference_head.get_weights())
            assert keras.backend.standardize_dtype(head.proxies.dtype) == "float32"
            np.testing.assert_allclose(_numpy(head(emb)), want, rtol=1e-6, atol=1e-7)
        assert implicit.dtype_policy.name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_config_round_trip():
    head = ProxyHead(4, initializer="he_normal", name="proxy_head", trainable=False)
    config = head.get_config()
    assert config["num_classes"] == 4 and config["name"] == "proxy_head"
    clone = ProxyHead.from_config(config)
    assert clone.get_config() == config
    restored = keras.layers.deserialize(keras.layers.serialize(head))
    assert type(restored) is ProxyHead and restored.get_config() == config
    assert isinstance(restored.initializer, keras.initializers.HeNormal)
    default = ProxyHead(4).get_config()
    assert ProxyHead.from_config(default).get_config() == default


@pytest.mark.parametrize("num_classes", [0, -2, 2.5, True, "3"])
def test_invalid_num_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes="):
        ProxyHead(num_classes)


def _clusters(rng, classes=3, per_class=16, dim=8):
    centers = rng.normal(size=(classes, dim)) * 3.0
    labels = np.repeat(np.arange(classes), per_class)
    x = centers[labels] + rng.normal(size=(len(labels), dim))
    order = rng.permutation(len(labels))
    return x[order].astype("float32"), labels[order]


def _model():
    keras.utils.set_random_seed(0)  # the Dense and proxy initial weights
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4), keras.layers.UnitNormalization(), ProxyHead(3)]
    )


def _fit_and_check_it_learns(model, loss, x, y):
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    proxies_before = _numpy(model.layers[-1].proxies).copy()
    loss_before = model.evaluate(x, y, batch_size=48, verbose=0)
    # batch_size 20 leaves a last batch of 8: the traced function sees both sizes.
    history = model.fit(x, y, batch_size=20, epochs=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert np.max(np.abs(_numpy(model.layers[-1].proxies) - proxies_before)) > 1e-2
    loss_after = model.evaluate(x, y, batch_size=48, verbose=0)
    assert loss_after < 0.5 * loss_before  # seeds 0-5 end below 0.27×
    return loss_after


def test_proxy_anchor_trains_the_proxies(rng):
    x, y = _clusters(rng)
    _fit_and_check_it_learns(_model(), losses.ProxyAnchorLoss(alpha=16.0, delta=0.1), x, y)


def test_arcface_model_trains_its_proxies_and_reloads_without_custom_objects(rng, tmp_path):
    x, y = _clusters(rng)
    model = _model()
    loss = losses.ArcFaceLoss(margin=0.3, scale=16.0)
    loss_after = _fit_and_check_it_learns(model, loss, x, y)

    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects
    assert type(reloaded.layers[-1]) is ProxyHead
    assert type(reloaded.loss) is type(loss) and reloaded.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )
    np.testing.assert_allclose(
        reloaded.evaluate(x, y, batch_size=48, verbose=0), loss_after, rtol=1e-5
    )


def test_readme_snippet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # --- the README snippet, verbatim -------------------------------------------------
    import keras
    import numpy as np

    import losses  # registers ProxyHead and the losses with Keras

    # Someone else's model: any trunk that ends in an embedding.
    inputs = keras.Input((20,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    embedding = keras.layers.Dense(16, name="embedding")(hidden)

    # For training, add one learned proxy per class; the loss sees cosines (B, C).
    cosines = losses.ProxyHead(num_classes=5)(embedding)
    model = keras.Model(inputs, cosines)
    model.compile(optimizer="adam", loss=losses.ArcFaceLoss(margin=0.5, scale=64.0))

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, size=256)
    x = (rng.normal(size=(5, 20)) * 2)[y] + rng.normal(size=(256, 20))
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)

    # The proxies are a weight of the model: saved and reloaded with it.
    model.save("arcface.keras")
    model = keras.saving.load_model("arcface.keras")  # no custom_objects needed

    # Retrieval uses the embedding; the head is for training only.
    embedder = keras.Model(model.inputs, model.get_layer("embedding").output)
    vectors = keras.ops.normalize(embedder.predict(x, verbose=0))  # (256, 16), unit length
    # --- end of the snippet ---------------------------------------------------------------
    assert os.path.exists("arcface.keras")
    assert type(model.loss) is losses.ArcFaceLoss
    assert tuple(vectors.shape) == (256, 16)
    np.testing.assert_allclose(
        np.linalg.norm(keras.ops.convert_to_numpy(vectors), axis=1), 1.0, rtol=1e-5
    )


@pytest.mark.parametrize(
    "name,cls",
    [
        ("arcface", losses.ArcFaceLoss),
        ("cosface", losses.CosFaceLoss),
        ("proxy_anchor", losses.ProxyAnchorLoss),
    ],
)
def test_catalogue_entries_take_proxy_cosines_and_match_the_constructors(name, cls):
    entry = losses.spec(name)
    assert entry.cls is cls and entry.task == "retrieval" and entry.output == "proxy_cosines"
    assert type(losses.get(name)) is cls
    signature = inspect.signature(cls.__init__).parameters
    for arg in entry.args:
        assert signature[arg.name].default == arg.default
        # The catalogue's bounds reject what the constructor rejects.
        for bad in (arg.low if arg.low_open else arg.low - 0.1, arg.high):
            if bad is None:
                continue
            with pytest.raises(ValueError):
                arg.check(bad)
            with pytest.raises(ValueError):
                cls(**{arg.name: bad})
    assert entry.build({}).get_config() == cls().get_config()
