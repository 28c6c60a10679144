"""Backbones from `keras.applications`, wrapped so that they take images in [0, 1].

Each wrapper is `Input (H, W, C) in [0, 1] → [grayscale tiled to 3 channels] → ×255 → the
application's own `preprocess_input` → the application without its top, globally average
pooled → (B, F)`. For ResNet-50 `preprocess_input` is Caffe's (RGB → BGR, ImageNet mean
subtracted); EfficientNet, MobileNetV3 and ConvNeXt normalise inside the application and
their `preprocess_input` is the identity. The preprocessing is recorded in the model, so the
logged model takes [0, 1] images like every other losslab model.

`pretrained=imagenet` loads Keras's own weight file (`models.catalog.Weights`) from Keras's
cache folder `$KERAS_HOME/models` (default `~/.keras/models`), downloading it there first if
it is missing and a network is there; `imagenet_file` says which file and where.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

APPLICATIONS = {  # our name → (constructor, its preprocess_input)
    "resnet50": (keras.applications.ResNet50, keras.applications.resnet50.preprocess_input),
    "efficientnet_b0": (keras.applications.EfficientNetB0,
                        keras.applications.efficientnet.preprocess_input),
    "mobilenet_v3_small": (keras.applications.MobileNetV3Small,
                           keras.applications.mobilenet_v3.preprocess_input),
    "mobilenet_v3_large": (keras.applications.MobileNetV3Large,
                           keras.applications.mobilenet_v3.preprocess_input),
    "convnext_tiny": (keras.applications.ConvNeXtTiny, keras.applications.convnext.preprocess_input),
}
APPLICATION_LAYER = "application"  # the application inside the wrapper (imagenet weights go here)


def application(name: str, input_shape, *, l2: float = 0.0, pooling: str = "avg") -> keras.Model:
    """Images (B, H, W, C) in [0, 1], C = 1 or 3, H, W >= 32 → features (B, F).

    Args:
        name: a key of `APPLICATIONS`.
        input_shape: (H, W, C).
        l2: ridge penalty λ‖k‖² on every conv and dense kernel (set on the variables: the
            applications take no regularizer argument); 0 = none.
        pooling: "avg" only (an application's last map is small and wide).
    """
    if pooling != "avg":
        raise ValueError(f"pooling must be avg for {name}; got {pooling!r}")
    height, width, channels = (int(d) for d in input_shape)
    if channels not in (1, 3):
        raise ValueError(f"{name} takes 1 (tiled to 3) or 3 channels; got {channels}")
    constructor, preprocess = APPLICATIONS[name]
    inputs = keras.Input((height, width, channels), name="image")
    x = inputs
    if channels == 1:
        x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    x = preprocess(keras.layers.Rescaling(255.0, name="to_0_255")(x))
    app = constructor(include_top=False, weights=None, input_shape=(height, width, 3),
                      pooling="avg")
    app.name = APPLICATION_LAYER
    model = keras.Model(inputs, app(x), name="backbone")
    if l2 > 0:
        for variable in app.trainable_weights:
            if variable.path.endswith("kernel"):  # kernel, depthwise_kernel
                variable.regularizer = keras.regularizers.L2(l2)
    return model


def resnet50(input_shape, **kwargs) -> keras.Model:
    return application("resnet50", input_shape, **kwargs)


def efficientnet_b0(input_shape, **kwargs) -> keras.Model:
    return application("efficientnet_b0", input_shape, **kwargs)


def mobilenet_v3_small(input_shape, **kwargs) -> keras.Model:
    return application("mobilenet_v3_small", input_shape, **kwargs)


def mobilenet_v3_large(input_shape, **kwargs) -> keras.Model:
    return application("mobilenet_v3_large", input_shape, **kwargs)


def convnext_tiny(input_shape, **kwargs) -> keras.Model:
    return application("convnext_tiny", input_shape, **kwargs)


# --- imagenet weights -------------------------------------------------------------------


def keras_cache() -> Path:
    """Keras's cache folder of weight files: `$KERAS_HOME/models`, else `~/.keras/models`
    (`/tmp/.keras/models` when the home folder is not writable, as Keras does)."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return Path(home) / "models"


def imagenet_file(weights, *, download: bool = True) -> Path:
    """The cached weight file of `weights` (`models.catalog.Weights`), downloaded first when
    missing and `download`. Raises FileNotFoundError naming the file, the folder and the URL
    when it is not there and cannot be fetched (no network)."""
    path = keras_cache() / weights.file
    if path.is_file():
        return path
    error = "not downloaded (download=False)"
    if download:
        try:
            return Path(keras.utils.get_file(weights.file, weights.url, cache_subdir="models",
                                             cache_dir=str(keras_cache().parent)))
        except Exception as exc:  # noqa: BLE001 (any download failure means: not available)
            error = f"download failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    raise FileNotFoundError(
        f"the imagenet weights {weights.file} are not in {path.parent} and could not be "
        f"fetched ({error}); on a machine with a network, download {weights.url} and put it "
        f"in {path.parent} (or set KERAS_HOME to a folder whose models/ holds it)"
    )


def load_imagenet(backbone: keras.Model, path: Path) -> None:
    """Keras's ImageNet weight file (HDF5, layers by order) into the wrapped application."""
    backbone.get_layer(APPLICATION_LAYER).load_weights(str(path))
