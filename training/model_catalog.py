"""The model registry for the training side, readable without importing Keras.

`models/__init__.py` imports Keras (about 6 s); `--help` and config validation need only
`models/catalog.py` (standard library only). As `training.loss_catalog` does for losses, that
file is loaded under its own name, `models.catalog`, without running the package's
`__init__`; when `models` is imported later it finds it in `sys.modules`, so there is one
registry.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from training.errors import ConfigError

WEIGHT_SUFFIXES = (".weights.h5", ".keras")  # the files `pretrained=PATH` takes


def catalog():
    """The `models.catalog` module (loaded without Keras unless `models` is imported)."""
    if "models.catalog" in sys.modules:
        return sys.modules["models.catalog"]
    found = importlib.util.find_spec("models")  # locates the package without running it
    if found is None or not found.submodule_search_locations:
        raise ConfigError("the models package is not installed (make venv installs it)")
    folder = Path(next(iter(found.submodule_search_locations)))
    spec = importlib.util.spec_from_file_location("models.catalog", folder / "catalog.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def model_spec(name: str):
    """The `ModelSpec` of a registered name, or of a user's "module:function" (whose module
    must import and hold that function). Raises ConfigError naming the valid models."""
    found = catalog().find(name)
    if found is not None:
        return found
    if ":" not in name:
        raise ConfigError(str(catalog().unknown(name)))
    module_name, _, function = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 (the user's module: report any failure)
        raise ConfigError(f"model={name}: module {module_name!r} does not import "
                          f"({type(exc).__name__}: {exc}); valid: a registered model "
                          f"({', '.join(catalog().names())}) or module:function") from None
    if not callable(getattr(module, function, None)):
        raise ConfigError(f"model={name}: module {module_name} has no function {function!r}; "
                          "valid: module:function with function(input_shape) -> keras.Model")
    return catalog().user_model(name)


def check(model: str, pretrained: str, image_size: int | None) -> None:
    """What the config can check without Keras: the model exists, `pretrained` is one of
    none | imagenet (for a model with imagenet weights) | a weight file's path, and
    `image_size` is not below the model's minimum. (Whether the file exists, fits the
    architecture, or the imagenet file is cached is checked when the model is built.)"""
    entry = model_spec(model)
    if pretrained == "imagenet" and entry.imagenet is None:
        with_weights = ", ".join(s.name for s in catalog().specs() if s.imagenet)
        raise ConfigError(f"pretrained=imagenet: model {entry.name} has no imagenet weights; "
                          f"valid: none or a weight file (PATH); models with imagenet weights: "
                          f"{with_weights}")
    if pretrained not in ("none", "imagenet") and not pretrained.endswith(WEIGHT_SUFFIXES):
        raise ConfigError(f"pretrained={pretrained!r} is not valid; choose none, imagenet or "
                          f"the path of a {' or '.join(WEIGHT_SUFFIXES)} file")
    if image_size is not None and image_size < entry.min_size:
        raise ConfigError(f"image_size={image_size} is below the minimum input of model "
                          f"{entry.name}; valid: image_size >= {entry.min_size}")


def check_warmup(model: str, output: str, embedding_dim: int | None, warmup_epochs: int) -> None:
    """A warm-up trains only the head: a model whose loss takes the bare embedding (no
    projection, no proxies) has none to train."""
    if not warmup_epochs or output != "embedding" or embedding_dim is not None:
        return
    if model_spec(model).embedding_dim is None:
        raise ConfigError(f"warmup_epochs={warmup_epochs}: model {model} with this loss has no "
                          "head to train while its backbone is frozen (its embedding is the "
                          "backbone's map); valid: warmup_epochs=0, or embedding_dim=N for a "
                          "projection head")


def model_lines(width: int) -> list[str]:
    """One line per registered model for `--help`: parameters, minimum input, weights."""
    lines = []
    for entry in catalog().specs():
        weights = ", imagenet" if entry.imagenet else ""
        lines.append(f"  {entry.name:<{width}} {entry.params / 1e6:5.2f} M params, F={entry.features}, "
                     f"input >= {entry.min_size}×{entry.min_size}{weights}: {entry.summary}")
    return lines
