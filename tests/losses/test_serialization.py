"""get_config/from_config round trips, and .keras save/reload without custom_objects."""

import inspect

import keras
import numpy as np
import pytest

import losses

CLASSIFICATION = [
    losses.Crossentropy(),
    losses.BalancedCrossentropy([0.5, 1.0, 2.0]),
    losses.FocalLoss(gamma=1.5, alpha=[0.2, 0.3, 0.5]),
    losses.FocalLoss(gamma=0.5, alpha=0.25, from_logits=True),
]
METRIC = [
    losses.TripletLoss(margin=0.3, mining="semi-hard", distance="cosine"),
    losses.TripletLoss(mining="hard", distance="squared", soft=True),
    losses.TripletLoss(mining="all", soft=True),
    losses.ContrastiveLoss(margin=0.7, distance="euclidean"),
]
ALL = CLASSIFICATION + METRIC


@pytest.mark.parametrize("loss", ALL, ids=lambda loss: loss.name)
def test_config_keys_are_init_args_and_round_trip(loss):
    config = loss.get_config()
    init_args = set(inspect.signature(type(loss).__init__).parameters) - {"self"}
    assert set(config) - {"dtype"} == init_args - {"dtype"}
    clone = type(loss).from_config(config)
    assert clone.get_config() == config
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss) and restored.get_config() == config


def _data(loss, rng):
    x = rng.normal(size=(24, 4)).astype("float32")
    y = rng.integers(0, 3, size=24)
    width = 3 if loss in CLASSIFICATION else 2
    return x, y, width


@pytest.mark.slow
@pytest.mark.parametrize("loss", ALL, ids=lambda loss: loss.name)
def test_compile_fit_save_and_reload_without_custom_objects(loss, tmp_path):
    x, y, width = _data(loss, np.random.default_rng(0))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(width)])
    model.compile(optimizer="sgd", loss=loss)
    # batch_size 16 leaves a last batch of 8: the traced function sees both sizes.
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded.loss) is type(loss)
    assert reloaded.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(
        reloaded.evaluate(x, y, batch_size=24, verbose=0),
        model.evaluate(x, y, batch_size=24, verbose=0),
        rtol=1e-5,
    )
