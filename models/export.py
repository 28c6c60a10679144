"""The inference model a run logs: Keras built-in layers only, so it reloads anywhere.

A trained model may hold `losses.ProxyHead` (a cosine classifier head, or the class proxies
of a proxy loss). The logged model must load in a Python without our packages, so:
- a cosine classifier head becomes UnitNormalization + Dense(no bias) whose kernel is the
  normalised proxies: the same logits, built-in layers;
- class proxies of a metric loss are dropped: retrieval uses the embedding that feeds them.
"""

from __future__ import annotations

import keras
import numpy as np

from losses import ProxyHead


def inference_model(model: keras.Model, *, drop_proxies: bool) -> keras.Model:
    """An uncompiled copy of `model` (its trained weights) with no class of ours in it."""
    last = model.layers[-1]
    if isinstance(last, ProxyHead):
        features = last.input
        if drop_proxies:
            name = model.name.removesuffix("_proxies")
            return _copy(keras.Model(model.input, features, name=name))
        proxies = np.asarray(keras.ops.convert_to_numpy(last.weights[0]), np.float32)
        unit = proxies / np.sqrt(np.sum(proxies**2, axis=0, keepdims=True) + 1e-12)
        h = keras.layers.UnitNormalization(axis=-1, dtype="float32", name="normalize")(features)
        dense = keras.layers.Dense(unit.shape[1], use_bias=False, dtype="float32", name=last.name)
        logits = dense(h)
        dense.set_weights([unit])
        return _copy(keras.Model(model.input, logits, name=model.name))
    return _copy(model)


def _copy(model: keras.Model) -> keras.Model:
    # from_config, not clone_model: Keras 3's clone_model re-compiles a compiled model.
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy
