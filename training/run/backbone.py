"""The run's model from its config (`model`, `pretrained`, `freeze_bn`, heads), and what the
run records about it: the backbone's size and the origin and sha256 of its initial weights.

A model that cannot be built as asked (unknown name, input below the model's minimum, a
`module:function` that gives no model, a weight file of another architecture, imagenet
weights neither cached nor downloadable) is `ConfigError`: the trainer builds the model
before it opens a run, so the command line exits with code 2 and no run is created.
"""

from __future__ import annotations

import keras
import mlflow

import models
from losses.spec import output_units as output_units_of
from models import registry
from training.config import Config
from training.errors import ConfigError


def output_units(config: Config) -> int:
    """Regression: the head's outputs, from the loss's entry (`losses.spec.output_units`):
    "value" 1, "quantiles" one per quantile, "mean_logvar" 2. Other tasks: 1 (unused)."""
    return output_units_of(config.spec, config.loss_args) or 1


def regression_quantiles(config: Config) -> tuple[float, ...]:
    """The quantile levels of a quantile loss, in order; () for any other loss."""
    value = config.resolved_loss_args().get("quantiles", ())
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    return tuple(float(v) for v in value)


def build_model(config: Config, input_shape: tuple[int, ...], num_classes: int,
                splits=None) -> keras.Model:
    """The training model for the loss's input (its entry's `output`) on backbone
    `config.model` ("auto" resolved). Augmentation is inside the model (active in `fit`
    only), seeded with the run's seed.

    Regression reads the run's `splits` (`training.data.Splits`): a table's training
    `feature_stats` (the model's Normalization) and `target_stats` (the Rescaling of the
    head's output, with `target_scale=true`). They are constants of the model, not weights:
    a model rebuilt to load a checkpoint needs the same splits."""
    feature_stats = getattr(splits, "feature_stats", None)
    target_stats = getattr(splits, "target_stats", None) if config.target_scale else None
    try:
        return models.build(
            config.resolved_model(), input_shape, num_classes, output=config.spec.output,
            head=config.resolved_head() if config.task == "classification" else "dense",
            embedding_dim=config.embedding_dim, l2=config.l2,
            augment=config.resolved_augment(), seed=config.seed,
            pretrained=config.pretrained, freeze_bn=config.freeze_bn,
            units=output_units(config), feature_stats=feature_stats, target_stats=target_stats,
            options=config.model_options(),
        )
    except models.ModelError as exc:
        raise ConfigError(str(exc)) from None


def log_source(config: Config, model: keras.Model) -> None:
    """Params and tags of the active run: the backbone's parameter count, and where its initial
    weights came from (`random`, Keras's imagenet file and its URL, or a file) with the file's
    sha256. (`model` and `pretrained` themselves are config params already.)"""
    entry = registry.spec(config.resolved_model())
    path = registry.pretrained_file(entry, config.pretrained, download=False)
    params = {"model.backbone_params": registry.backbone_of(model).count_params()}
    if path is None:
        params["model.weights_origin"] = "random initialisation (seed)"
    else:
        digest = registry.sha256(path)
        origin = (f"keras imagenet {entry.imagenet.url}" if config.pretrained == "imagenet"
                  else str(path.resolve()))
        params.update({"model.weights_origin": origin, "model.weights_file": str(path.resolve()),
                       "model.weights_sha256": digest})
        mlflow.set_tag("losslab.weights_sha256", digest)
    mlflow.log_params(params)
    mlflow.set_tag("losslab.model", entry.name)

