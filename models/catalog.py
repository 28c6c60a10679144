"""Our models, one entry each: the catalogue `--help`, config validation and the trainer read.

Standard library only, like `losses/catalog.py`: each backbone is named by the import path of
its builder and imported on first use, so `--help` lists the models (parameters, minimum
input, imagenet weights) without importing Keras. `tests/models/test_registry.py` builds
every entry and checks `params`, `features` and `min_size` against the built model, so the
numbers cannot drift.

A builder is `fn(input_shape, *, l2, pooling) -> keras.Model`: images (B, H, W, C) in [0, 1]
→ features (B, F). `models/registry.py` puts the head on it. Adding a model: one builder in
its family's file and one `add(...)` below.
"""

from __future__ import annotations

import dataclasses
import difflib


@dataclasses.dataclass(frozen=True)
class Weights:
    """A Keras weight file of a backbone: its name in Keras's cache (`$KERAS_HOME/models`,
    default `~/.keras/models`) and where Keras downloads it from."""

    file: str
    url: str


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One backbone.

    Attributes:
        name: the `model=` name.
        target: "module:function" of the builder.
        family: the file it lives in (small_cnn, cifar_resnet, keras.applications, yours).
        summary: one line for `--help`.
        params: weights of the backbone on 3-channel input (BatchNorm statistics included, head
            excluded; None: unknown).
        features: F, the width of the pooled features (None: unknown).
        min_size: smallest input height and width.
        batchnorm: whether it has BatchNorm layers (`freeze_bn` acts on them).
        embedding_dim: the retrieval projection when `embedding_dim=none` (None: none, the
            features themselves are the embedding).
        retrieval_pooling: how the last map becomes the embedding's input ("avg" or
            "flatten", which keeps where a feature fired; models/trunk.py).
        dropout: dropout before the classifier head.
        imagenet: the Keras weight file of `pretrained=imagenet`, or None.
        tabular: takes feature rows (F,) (tables) as well as images, which it flattens;
            `params` and `features` are then those of a 1×1×3 input.
        options: config keys the builder takes as keywords (`hidden`, `dropout`).
    """

    name: str
    target: str
    family: str
    summary: str
    params: int | None
    features: int | None
    min_size: int
    batchnorm: bool | None
    embedding_dim: int | None = 128  # the papers' size (Musgrave et al. 2020; Proxy-Anchor)
    retrieval_pooling: str = "avg"
    dropout: float = 0.0
    imagenet: Weights | None = None
    tabular: bool = False
    options: tuple[str, ...] = ()

    @property
    def is_user_model(self) -> bool:
        return self.family == "yours"


_REGISTRY: dict[str, ModelSpec] = {}


class UnknownModel(ValueError):
    """No such registered model."""


def add(spec: ModelSpec) -> ModelSpec:
    _REGISTRY[spec.name] = spec
    return spec


def find(name: str) -> ModelSpec | None:
    return _REGISTRY.get(name)


def specs() -> list[ModelSpec]:
    """Every entry, in registration order."""
    return list(_REGISTRY.values())


def names() -> list[str]:
    return list(_REGISTRY)


def unknown(name: str) -> UnknownModel:
    close = difflib.get_close_matches(name, names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UnknownModel(
        f"unknown model {name!r}{hint}; known models: {', '.join(names())}, or a "
        "'module:function' of your own that maps input_shape to a keras.Model"
    )


def user_model(path: str) -> ModelSpec:
    """The entry of a user's `module:function` (nothing known about it until it is built)."""
    return ModelSpec(
        name=path, target=path, family="yours", summary="your own model", params=None,
        features=None, min_size=1, batchnorm=None,
    )


# --- the entries ------------------------------------------------------------------------
add(ModelSpec(
    name="small_cnn", target="models.trunk:small_cnn_backbone", family="small_cnn",
    summary="3 blocks of 2×[conv–BN–ReLU], 32/64/128 filters; the default",
    params=288_352, features=128, min_size=8, batchnorm=True, embedding_dim=None,
    retrieval_pooling="flatten", dropout=0.3,
))
for _depth, _params in ((20, 270_448), (32, 465_776), (56, 856_432)):
    add(ModelSpec(
        name=f"resnet{_depth}", target=f"models.cifar_resnet:resnet{_depth}",
        family="cifar_resnet",
        summary=f"CIFAR ResNet-{_depth} (He et al. 2016), 16/32/64 filters, option-A shortcuts",
        params=_params, features=64, min_size=8, batchnorm=True,
    ))

_KERAS = "https://storage.googleapis.com/"
add(ModelSpec(
    name="resnet50", target="models.applications:resnet50", family="keras.applications",
    summary="ResNet-50 (He et al. 2016)", params=23_587_712, features=2048, min_size=32,
    batchnorm=True, imagenet=Weights(
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        _KERAS + "tensorflow/keras-applications/resnet/"
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
))
add(ModelSpec(
    name="efficientnet_b0", target="models.applications:efficientnet_b0",
    family="keras.applications", summary="EfficientNet-B0 (Tan & Le 2019)", params=4_049_571,
    features=1280, min_size=32, batchnorm=True,
    imagenet=Weights("efficientnetb0_notop.h5", _KERAS + "keras-applications/efficientnetb0_notop.h5"),
))
for _size, _params, _width in (("small", 939_120, 576), ("large", 2_996_352, 960)):
    _file = f"weights_mobilenet_v3_{_size}_224_1.0_float_no_top_v2.h5"
    add(ModelSpec(
        name=f"mobilenet_v3_{_size}", target=f"models.applications:mobilenet_v3_{_size}",
        family="keras.applications", summary=f"MobileNetV3-{_size.title()} (Howard et al. 2019)",
        params=_params, features=_width, min_size=32, batchnorm=True,
        imagenet=Weights(_file, _KERAS + "tensorflow/keras-applications/mobilenet_v3/" + _file),
    ))
add(ModelSpec(
    name="convnext_tiny", target="models.applications:convnext_tiny",
    family="keras.applications", summary="ConvNeXt-Tiny (Liu et al. 2022; LayerNorm, no BatchNorm)",
    params=27_820_128, features=768, min_size=32, batchnorm=False,
    imagenet=Weights("convnext_tiny_notop.h5",
                     _KERAS + "tensorflow/keras-applications/convnext/convnext_tiny_notop.h5"),
))

# Tables (feature rows); `model=auto` picks mlp for a table.
add(ModelSpec(
    name="mlp", target="models.tabular:mlp", family="tabular",
    summary="for tables: Dense–ReLU[–Dropout] per width of hidden= (default 256,256)",
    params=66_816, features=256, min_size=1, batchnorm=False, tabular=True,
    options=("hidden", "dropout"),
))
add(ModelSpec(
    name="linear", target="models.tabular:linear", family="tabular",
    summary="for tables: no hidden layer, the head is the linear model (ridge with l2=)",
    params=0, features=3, min_size=1, batchnorm=False, tabular=True,
))
