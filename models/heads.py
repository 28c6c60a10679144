"""The heads losslab puts on a backbone: a classifier (dense or cosine logits), an embedding
(L2-normalised), class proxies on that embedding, and a regression head (units from the
loss: 1 value, one per quantile, or mean and log-variance). Any backbone of the registry
(`models/registry.py`) takes any head; `small_cnn` and `embedding_net` are the default
backbone's two models, kept as functions.

Layer order is fixed: image input → augmentation → backbone (a nested model) → head. The
backbone is built after the augmentation block, so a seed gives the same initial weights as
before the registry existed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras

from losses import ProxyHead
from models.augment import augmentation
from models.trunk import check_input_shape, conv_trunk, regularizer

HEADS = ("dense", "cosine")


def _images(shape, augment: str, seed: int | None):
    """(input tensor, tensor the trunk reads): the augmentation block sits between them."""
    inputs = keras.Input(shape, name="image")
    block = augmentation(augment, seed=seed)
    return inputs, (block(inputs) if block is not None else inputs)


def classifier(
    make_backbone: Callable[[], keras.Model],
    input_shape,
    num_classes: int,
    *,
    head: str = "dense",
    dropout: float = 0.0,
    l2: float = 0.0,
    augment: str = "none",
    seed: int | None = None,
    name: str = "classifier",
) -> keras.Model:
    """Images (B, H, W, C) in [0, 1] → logits float32 (B, num_classes).

    Backbone features → [dropout] → dense logits, or the cosine head of LDAM and ArcFace
    (Cao et al. 2019): cosines in [−1, 1] of L2-normalised features and L2-normalised class
    weights (`losses.ProxyHead`), no bias; the loss scales them. The last layer is float32,
    so logits (and the loss) stay float32 under a mixed-precision policy.

    Args:
        make_backbone: () -> keras.Model, images → (B, F); called after the augmentation.
        input_shape: (H, W, C).
        num_classes: >= 2.
        head: "dense" or "cosine".
        dropout: rate before the head, in [0, 1); 0 = no dropout layer.
        l2: ridge penalty λ on the dense head's kernel.
        augment: training-time augmentation policy, one of ``models.augment.POLICIES``.
        seed: seed of the augmentation layers (None = unseeded).
        name: the model's name.
    """
    if head not in HEADS:
        raise ValueError(f"head={head!r} is not valid; choose one of: {', '.join(HEADS)}")
    if not (isinstance(num_classes, int) and num_classes >= 2):
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    inputs, images = _images(tuple(input_shape), augment, seed)
    h = make_backbone()(images)
    if dropout > 0:
        h = keras.layers.Dropout(dropout, name="dropout")(h)
    if head == "cosine":
        logits = ProxyHead(num_classes, name="logits")(h)
    else:
        logits = keras.layers.Dense(
            num_classes, kernel_regularizer=regularizer(l2), dtype="float32", name="logits"
        )(h)
    return keras.Model(inputs, logits, name=name)


REGRESSION_OUTPUTS = ("value", "quantiles", "mean_logvar")


def regressor(
    make_backbone: Callable[[], keras.Model],
    input_shape,
    units: int,
    *,
    feature_stats=None,
    target_stats=None,
    output: str = "value",
    dropout: float = 0.0,
    l2: float = 0.0,
    augment: str = "none",
    seed: int | None = None,
    name: str = "regressor",
) -> keras.Model:
    """Rows (B, F) or images (B, H, W, C) → raw float32 outputs (B, units), no activation:
    the loss reads them (a value, quantiles in order, or mean and log-variance).

    Args:
        units: >= 1.
        feature_stats: (mean, variance) float32 (F,) of the training rows: a Normalization
            layer first standardises raw rows with them, so the model (and the logged one)
            takes rows as they come; None for images.
        target_stats: (center c, scale s) of the training targets, or None: the Dense layer
            then predicts standardised targets and a Rescaling layer maps them back (values
            and quantiles: s·z + c; `output="mean_logvar"`: the mean s·z + c and the
            log-variance z + 2 ln s), so losses and metrics stay in target units while the
            optimiser sees targets of unit scale (diabetes' 25..346 otherwise needs
            thousands of Adam steps just to move the bias).
        The others: see `classifier`.
    """
    if not (isinstance(units, int) and units >= 1):
        raise ValueError(f"units must be an integer >= 1, got {units!r}")
    shape = tuple(input_shape)
    inputs = keras.Input(shape, name="features" if len(shape) == 1 else "image")
    h = inputs
    if feature_stats is not None:
        mean, variance = feature_stats
        h = keras.layers.Normalization(mean=mean, variance=variance, name="standardize")(h)
    block = augmentation(augment, seed=seed) if len(shape) == 3 else None
    if block is not None:
        h = block(h)
    h = make_backbone()(h)
    if dropout > 0:
        h = keras.layers.Dropout(dropout, name="dropout")(h)
    out = keras.layers.Dense(units, kernel_regularizer=regularizer(l2), dtype="float32",
                             name="prediction")(h)
    if target_stats is not None:
        out = _target_scale(output, *target_stats)(out)
    return keras.Model(inputs, out, name=name)


def _target_scale(output: str, center: float, scale: float):
    """Rescaling (a built-in layer, so the logged model reloads anywhere) to target units."""
    if output == "mean_logvar":
        return keras.layers.Rescaling([scale, 1.0], [center, 2.0 * math.log(scale)],
                                      dtype="float32", name="target_scale")
    return keras.layers.Rescaling(scale, center, dtype="float32", name="target_scale")


def embedder(
    make_backbone: Callable[[], keras.Model],
    input_shape,
    dim: int | None,
    *,
    l2: float = 0.0,
    augment: str = "none",
    seed: int | None = None,
    name: str = "embedding_net",
) -> keras.Model:
    """Images (B, H, W, C) → unit-norm float32 embeddings (B, D): backbone features →
    [dense(dim)] → L2 normalisation, in float32 (normalising in float16 loses the small
    differences between nearby embeddings). On the unit sphere, euclidean and cosine distance
    rank neighbours the same way: d² = 2 − 2·cos. `dim=None`: no projection, D = F."""
    if not (dim is None or (isinstance(dim, int) and not isinstance(dim, bool) and dim >= 2)):
        raise ValueError(f"dim must be an integer >= 2 or None (no projection), got {dim!r}")
    inputs, images = _images(tuple(input_shape), augment, seed)
    h = make_backbone()(images)
    if dim is not None:
        h = keras.layers.Dense(
            dim, kernel_regularizer=regularizer(l2), dtype="float32", name="project"
        )(h)
    outputs = keras.layers.UnitNormalization(axis=-1, dtype="float32", name="l2_normalize")(h)
    return keras.Model(inputs, outputs, name=name)


def with_proxies(embedding: keras.Model, num_classes: int) -> keras.Model:
    """The training model of a proxy loss: embedding net → cosines (B, C) to learned class
    proxies (`losses.ProxyHead`). The inference model is `embedding` itself."""
    cosines = ProxyHead(num_classes, name="proxies")(embedding.output)
    return keras.Model(embedding.input, cosines, name=f"{embedding.name}_proxies")


def small_cnn(
    input_shape,
    num_classes: int,
    *,
    l2: float = 0.0,
    dropout: float = 0.3,
    augment: str = "none",
    seed: int | None = None,
    head: str = "dense",
) -> keras.Model:
    """The default classifier: the conv trunk (models/trunk.py) → dropout → dense or cosine
    head. Images (B, H, W, C) in [0, 1], H, W >= 8 → logits float32 (B, num_classes).

    Args:
        input_shape: (H, W, C), H and W >= 8.
        num_classes: >= 2.
        l2: ridge penalty λ on all kernels; 0 = none.
        dropout: dropout rate before the dense layer, in [0, 1).
        augment: training-time augmentation policy, one of ``models.augment.POLICIES``.
        seed: seed of the augmentation layers (None = unseeded).
        head: "dense" (logits) or "cosine" (cosine logits).
    """
    shape = check_input_shape(input_shape)
    regularizer(l2)  # a bad l2 fails before anything is built
    return classifier(lambda: conv_trunk(shape, l2=l2), shape, num_classes, head=head,
                      dropout=dropout, l2=l2, augment=augment, seed=seed, name="small_cnn")


def embedding_net(
    input_shape,
    dim: int | None = 64,
    *,
    l2: float = 0.0,
    augment: str = "none",
    seed: int | None = None,
) -> keras.Model:
    """The default embedding net: the conv trunk, last map flattened → [dense(dim)] → L2
    normalisation. Images (B, H, W, C), H, W >= 8 → unit-norm float32 (B, D).

    Flattening rather than average pooling keeps where a stroke is, which the held-out
    classes need. ``dim=None`` drops the projection: the embedding is the flattened map
    itself, D = h·w·128 (1152 on 28×28, 512 on 8×8). A learned projection keeps only what
    separates the training classes; the map under it keeps more. On the MNIST t10k retrieval
    split (semi-hard triplet, margin 0.2, "strong" augmentation, 10 epochs, seed 0),
    held-out precision@1 / MAP@R were 0.938 / 0.551 through dense(64) and 0.981 / 0.659
    without it, and 0.914 / 0.543 through dense(256): the gain is not the width.

    Args:
        input_shape: (H, W, C), H and W >= 8.
        dim: embedding size >= 2, or None for no projection (D = h·w·128).
        l2: ridge penalty λ on all kernels; 0 = none.
        augment: training-time augmentation policy, one of ``models.augment.POLICIES``.
        seed: seed of the augmentation layers (None = unseeded).
    """
    shape = check_input_shape(input_shape)
    return embedder(lambda: conv_trunk(shape, l2=l2, pooling="flatten"), shape, dim, l2=l2,
                    augment=augment, seed=seed, name="embedding_net")
