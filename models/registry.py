"""Models by name: `build("resnet20", ...)` puts the head a loss takes on a registered backbone.

The names, sizes and weight files are in `models/catalog.py` (no Keras needed to read it);
this module builds them. Every model has the same layout: image input → [augmentation] →
backbone (a nested `keras.Model`, `backbone_of`) → head (`models/heads.py`). What is not the
backbone is the head: the classifier layer, the projection and the class proxies
(`head_variables`), which `head_lr_mult` and `warmup_epochs` act on.

Bad input raises `ModelError` with the valid choices: unknown name, input below the
backbone's minimum, a `module:function` that does not give a model, a weight file of another
architecture, imagenet weights that are neither cached nor downloadable.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import warnings
from pathlib import Path

import keras
import numpy as np

from models import catalog
from models.applications import imagenet_file, load_imagenet
from models.heads import REGRESSION_OUTPUTS, classifier, embedder, regressor, with_proxies
from models.user import UserModelError, user_backbone

BACKBONE_NAMES = ("trunk", "backbone")  # small_cnn's nested model keeps its old name
WEIGHT_SUFFIXES = (".weights.h5", ".keras")


class ModelError(ValueError):
    """A model that cannot be built as asked; the message names the value and the choices."""


def spec(name: str) -> catalog.ModelSpec:
    """The entry of a registered name or of a user's "module:function"."""
    found = catalog.find(name)
    if found is not None:
        return found
    if ":" in name:
        return catalog.user_model(name)
    raise ModelError(str(catalog.unknown(name)))


def backbone(name: str, input_shape, *, l2: float = 0.0, pooling: str = "avg",
             pretrained: str = "none", options: dict | None = None) -> keras.Model:
    """The backbone `name`: images (B, H, W, C) in [0, 1] → features (B, F), with its weights.

    Args:
        name: a registered model or "module:function".
        input_shape: (H, W, C); H and W at least the entry's `min_size`.
        l2: ridge penalty λ‖k‖² on the backbone's kernels.
        pooling: "avg", or "flatten" where the backbone offers it (small_cnn).
        pretrained: "none", "imagenet" or the path of a .weights.h5/.keras file of this
            backbone (`load_pretrained`).
        options: the entry's own keywords (`options`: mlp's hidden, dropout).
    """
    entry = spec(name)
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 1 and not entry.tabular:
        tables = ", ".join(s.name for s in catalog.specs() if s.tabular)
        raise ModelError(f"model={entry.name} takes images; this dataset gives feature rows "
                         f"{shape} (a table); valid: a model for tables ({tables}) or auto")
    rows = entry.tabular and len(shape) == 1 and shape[0] >= 1
    if not rows and (len(shape) != 3 or min(shape[:2]) < entry.min_size or shape[2] < 1):
        raise ModelError(
            f"model={entry.name} needs input (height, width, channels) with height, width >= "
            f"{entry.min_size}; got {shape} (valid: image_size >= {entry.min_size}, e.g. "
            f"image_size={max(entry.min_size, 32)}, or a model with a smaller minimum: "
            f"{', '.join(s.name for s in catalog.specs() if s.min_size <= min(shape[:2]))})")
    try:
        if entry.is_user_model:
            model = user_backbone(entry.target, shape, l2=l2, pooling=pooling)
        else:
            module, _, function = entry.target.partition(":")
            extra = {k: v for k, v in (options or {}).items() if k in entry.options}
            model = getattr(importlib.import_module(module), function)(shape, l2=l2,
                                                                      pooling=pooling, **extra)
    except UserModelError as exc:
        raise ModelError(str(exc)) from None
    load_pretrained(model, entry, pretrained)
    return model


def build(
    name: str,
    input_shape,
    num_classes: int,
    *,
    output: str,
    head: str = "dense",
    embedding_dim: int | None = None,
    l2: float = 0.0,
    augment: str = "none",
    seed: int | None = None,
    pretrained: str = "none",
    freeze_bn: bool = False,
    units: int = 1,
    feature_stats=None,
    target_stats=None,
    options: dict | None = None,
) -> keras.Model:
    """The training model of backbone `name` for a loss that takes `output`.

    Args:
        output: what the loss takes (`losses.spec.OUTPUTS`): "logits" or "cosine_logits"
            (a classifier; `head` chooses dense or cosine), "embedding" (L2-normalised),
            "proxy_cosines" (the embedding with learned class proxies), or a regression
            output ("value", "quantiles", "mean_logvar": `units` raw outputs).
        units: regression: outputs of the head (1, one per quantile, 2).
        feature_stats: regression on a table: the training rows' (mean, variance) that the
            model's first layer (Normalization) standardises with.
        target_stats: regression: (center, scale) of the training targets; the head then
            predicts standardised targets, mapped back by a Rescaling layer.
        options: the entry's own keywords (mlp: hidden, dropout).
        embedding_dim: the projection of an embedding; None = the entry's default (none on
            small_cnn, 128 on every other backbone).
        freeze_bn: BatchNorm layers keep their statistics and scale/offset
            (`freeze_batchnorm`); a model without BatchNorm gets a warning.
        The others: see `backbone` and `models.heads.classifier`.
    """
    entry = spec(name)
    shape = tuple(int(d) for d in input_shape)
    title = re.sub(r"\W", "_", entry.name.rpartition(":")[2]) if entry.is_user_model else entry.name
    if output in REGRESSION_OUTPUTS:
        model = regressor(
            lambda: backbone(name, shape, l2=l2, pretrained=pretrained, options=options), shape,
            units, feature_stats=feature_stats, target_stats=target_stats, output=output,
            dropout=entry.dropout, l2=l2, augment=augment,
            seed=seed, name=title)
    elif output in ("logits", "cosine_logits"):
        model = classifier(
            lambda: backbone(name, shape, l2=l2, pretrained=pretrained, options=options), shape,
            num_classes,
            head=head, dropout=entry.dropout, l2=l2, augment=augment, seed=seed, name=title)
    else:
        dim = embedding_dim if embedding_dim is not None else entry.embedding_dim
        model = embedder(
            lambda: backbone(name, shape, l2=l2, pooling=entry.retrieval_pooling,
                             pretrained=pretrained, options=options),
            shape, dim, l2=l2, augment=augment, seed=seed,
            name="embedding_net" if entry.name == "small_cnn" else f"{title}_embedding")
        if output == "proxy_cosines":
            model = with_proxies(model, num_classes)
    if freeze_bn and freeze_batchnorm(model) == 0:
        warnings.warn(f"freeze_bn=true: model {entry.name} has no BatchNormalization layer; "
                      "nothing frozen", UserWarning, stacklevel=2)
    return model


# --- parts of a built model -------------------------------------------------------------


def backbone_of(model: keras.Model) -> keras.Model:
    """The nested backbone model of a model `build` made."""
    for layer in model.layers:
        if isinstance(layer, keras.Model) and layer.name in BACKBONE_NAMES:
            return layer
    raise ValueError(f"model {model.name} has no backbone layer named {' or '.join(BACKBONE_NAMES)}")


def head_variables(model: keras.Model) -> list:
    """The trainable variables outside the backbone: classifier, projection, proxies."""
    inside = {id(v) for v in backbone_of(model).weights}
    return [v for v in model.trainable_variables if id(v) not in inside]


def all_layers(layer) -> list:
    """Every layer under `layer`, nested models opened, depth first."""
    found = []
    for sub in getattr(layer, "layers", ()):
        found.append(sub)
        found.extend(all_layers(sub))
    return found


def freeze_batchnorm(model: keras.Model) -> int:
    """Sets every BatchNormalization layer untrainable → how many. In Keras 3 such a layer
    runs in inference mode: its moving statistics are used and never updated, and its scale
    and offset are not trained (the frozen-BN protocol of Musgrave et al. 2020)."""
    frozen = [layer for layer in all_layers(model)
              if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in frozen:
        layer.trainable = False
    return len(frozen)


# --- pretrained weights -----------------------------------------------------------------


def pretrained_file(entry: catalog.ModelSpec, pretrained: str, *, download: bool = True):
    """The weight file `pretrained` names for `entry` (None for "none"). Raises ModelError:
    imagenet weights the model lacks or cannot find, a PATH that is not there."""
    if pretrained == "none":
        return None
    if pretrained == "imagenet":
        if entry.imagenet is None:
            with_weights = ", ".join(s.name for s in catalog.specs() if s.imagenet)
            raise ModelError(f"pretrained=imagenet: model {entry.name} has no imagenet weights; "
                             f"valid: none or a weight file (PATH); models with imagenet "
                             f"weights: {with_weights}")
        try:
            return imagenet_file(entry.imagenet, download=download)
        except FileNotFoundError as exc:
            raise ModelError(f"pretrained=imagenet: {exc}") from None
    path = Path(pretrained).expanduser()
    if not path.name.endswith(WEIGHT_SUFFIXES) or not path.is_file():
        raise ModelError(f"pretrained={pretrained}: no such file; valid: none, imagenet or the "
                         f"path of a {' or '.join(WEIGHT_SUFFIXES)} file of {entry.name}")
    return path


def load_pretrained(model: keras.Model, entry: catalog.ModelSpec, pretrained: str) -> None:
    """Loads the weights `pretrained` names into backbone `model` (nothing for "none").

    A PATH must hold every weight of this architecture with its shape: its weights are first
    set to NaN, so a weight the file does not hold is found after loading, by name."""
    path = pretrained_file(entry, pretrained)
    if path is None:
        return
    if pretrained == "imagenet":
        try:
            load_imagenet(model, path)
        except Exception as exc:  # noqa: BLE001 (a corrupt or foreign file in the cache)
            raise ModelError(f"pretrained=imagenet: {path} does not load into {entry.name} "
                             f"({_first_line(exc)})") from None
        return
    model.set_weights([np.full(w.shape, np.nan, w.dtype) for w in model.get_weights()])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras warns per skipped object; we raise below
            model.load_weights(str(path))
    except Exception as exc:  # noqa: BLE001 (Keras raises ValueError with the layer's name)
        raise ModelError(f"pretrained={pretrained} is not a weight file of {entry.name} on "
                         f"input {tuple(model.input.shape[1:])}: {_describe(exc)}; valid: a "
                         f"{' or '.join(WEIGHT_SUFFIXES)} file saved from this backbone") from None
    missing = [v.path for v in model.weights if np.isnan(keras.ops.convert_to_numpy(v)).any()]
    if missing:
        raise ModelError(f"pretrained={pretrained} holds no weights for layer "
                         f"{missing[0].rpartition('/')[0]} of {entry.name} ({len(missing)} "
                         f"weights missing); valid: a file saved from this backbone")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _describe(exc: Exception) -> str:
    """Keras's load error as one line naming the layer and the two shapes."""
    text = " ".join(str(exc).split())
    layer = re.search(r"object <\w+ name=([\w/.-]+)", text)
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    count = re.search(r"A total of (\d+) objects", text)
    if layer and shapes:
        more = f" ({count.group(1)} layers do not fit)" if count else ""
        return (f"layer {layer.group(1)} has shape {shapes.group(1)}, the file holds "
                f"{shapes.group(2)}{more}")
    return text[:300]
