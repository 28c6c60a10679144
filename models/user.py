"""`model=module:function`: a backbone of your own.

`function(input_shape) -> keras.Model` maps images (B, H, W, C) in [0, 1] to features (B, F),
or to a feature map (B, h, w, F), which is globally average pooled here. losslab puts its
heads on it (dense or cosine classifier, projection + L2 normalisation, class proxies) like on
its own backbones. For the logged model to reload anywhere, build it from Keras's own layers.
"""

from __future__ import annotations

import importlib

import keras


class UserModelError(ValueError):
    """The user's `module:function` does not import, is not callable or returns no model."""


def resolve(path: str):
    """The function named by "module:function". Raises UserModelError saying what is wrong."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise UserModelError(f"model={path!r} is not of the form module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 (the user's module: report any failure)
        raise UserModelError(
            f"model={path}: module {module_name!r} does not import ({type(exc).__name__}: "
            f"{exc})") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise UserModelError(f"model={path}: {module_name} has no function {attr!r}")
    return function


def user_backbone(path: str, input_shape, *, l2: float = 0.0, pooling: str = "avg") -> keras.Model:
    """The user's model as a backbone: images → (B, F) (a (B, h, w, F) map is pooled)."""
    shape = tuple(int(d) for d in input_shape)
    built = resolve(path)(shape)
    if not isinstance(built, keras.Model):
        raise UserModelError(
            f"model={path} returned {type(built).__name__}, not a keras.Model; it must be "
            "function(input_shape) -> keras.Model mapping images to (B, F) or (B, h, w, F)")
    inputs = keras.Input(shape, name="image")
    try:
        h = built(inputs)
    except Exception as exc:  # noqa: BLE001 (the user's model: report any failure)
        raise UserModelError(f"model={path}: its model does not take input of shape {shape} "
                             f"({type(exc).__name__}: {exc})") from None
    if len(h.shape) == 4:
        pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.Flatten
        h = pool(name="pool")(h)
    elif len(h.shape) != 2:
        raise UserModelError(f"model={path}: its output has shape {tuple(h.shape)}; it must be "
                             "(B, F) features or a (B, h, w, F) feature map")
    if l2 > 0:
        for variable in built.trainable_weights:
            if variable.path.endswith("kernel"):
                variable.regularizer = keras.regularizers.L2(l2)
    return keras.Model(inputs, h, name="backbone")
