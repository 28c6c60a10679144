"""Validation of a `training.config.Config`, run as each one is made: types, finiteness,
choices, ranges, and the combinations that cannot work together, each a `ConfigError` naming
the key, the bad value and the valid choices. It imports no Keras, and not `training.config`
(which calls it): it reads the config's own fields."""

from __future__ import annotations

import difflib
import math
import typing
from dataclasses import fields

from training.data import catalog as data_catalog
from training.errors import ConfigError
from training.loss_catalog import catalog, import_plugins, loss_spec
from training.model_catalog import check as check_model
from training.model_catalog import check_warmup

# A cosine head's class weights are unit-normalised, so τ-norm and MaxNorm leave it as it is:
# only these stages change it.
COSINE_STAGE2 = ("crt", "lws")


def unknown_key_message(key: str, valid: list[str], spec=None) -> str:
    """"unknown config key ... (did you mean ...?); valid keys: ..." for a key in neither
    `valid` (the config's fields) nor the loss entry `spec`'s arguments."""
    candidates = valid + list(spec.arg_names if spec else ())
    close = difflib.get_close_matches(key, candidates, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    takes = f"; {spec.name} takes {', '.join(spec.arg_names) or 'no arguments'}" if spec else ""
    return f"unknown config key {key!r}{hint}{takes}; valid keys: {', '.join(valid)}"


def _choice(key: str, value: typing.Any, choices: typing.Iterable[str]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(choices)}")


def _range(key: str, value: float | None, ok: bool, valid: str) -> None:
    if value is not None and not ok:
        raise ConfigError(f"{key}={value!r} is out of range; valid: {valid}")


def _check_types(config) -> None:
    hints = typing.get_type_hints(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        allowed = typing.get_args(hints[f.name]) or (hints[f.name],)
        if value is None and type(None) in allowed:
            continue
        ok = any(
            isinstance(value, t) and not (t is int and isinstance(value, bool))
            or (t is float and isinstance(value, int) and not isinstance(value, bool))
            for t in allowed
            if t is not type(None)
        )
        if not ok:
            names = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
            raise ConfigError(f"{f.name}={value!r} has the wrong type; expected {names}")


def _validate_loss(c):
    import_plugins(c.plugins)
    if not c.loss:
        raise ConfigError(f"loss='' is empty; choose one of: {', '.join(catalog().names())}")
    spec = loss_spec(c.loss)
    try:
        checked = spec.resolve(c.loss_args)
    except ValueError as exc:
        unknown = [k for k in c.loss_args if k not in spec.arg_names]
        raise ConfigError(unknown_key_message(unknown[0], [f.name for f in fields(c)], spec)
                          if unknown else str(exc)) from None
    # Stored as checked (ints widened to float), only the keys given: defaults stay the entry's.
    object.__setattr__(c, "loss_args", {k: checked[k] for k in sorted(c.loss_args)})
    return spec


def _check_finite(config) -> None:
    """Every float field is a finite number: `learning_rate=1e309` parses as inf."""
    for f in fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{f.name}={value!r} is not a finite number")


def validate(c) -> None:
    """Raise ConfigError for the first invalid value of a Config `c` (called as it is made)."""
    _check_types(c)
    _check_finite(c)
    spec = _validate_loss(c)
    for f in fields(c):
        if f.metadata.get("choices"):
            _choice(f.name, getattr(c, f.name), f.metadata["choices"])
    if not c.dataset:
        raise ConfigError("dataset='' is empty; use digits, idx:PATH or a TFDS name")
    _range("epochs", c.epochs, c.epochs >= 1, "an integer >= 1")
    _range("batch_size", c.batch_size, c.batch_size >= 2, "an integer >= 2")
    _range("learning_rate", c.learning_rate, c.learning_rate > 0, "> 0")
    _range("l2", c.l2, c.l2 >= 0, ">= 0")
    _range("seed", c.seed, c.seed >= 0, "an integer >= 0")
    _range("val_fraction", c.val_fraction, 0 < c.val_fraction < 0.5, "0 < val_fraction < 0.5")
    _range("imbalance", c.imbalance, c.imbalance >= 1, ">= 1 (1 = no imbalance)")
    _range("early_stopping", c.early_stopping, c.early_stopping >= 0, "an integer >= 0 (0 = off)")
    _range(
        "embedding_dim",
        c.embedding_dim,
        c.embedding_dim is None or c.embedding_dim >= 2,
        "an integer >= 2, or none (no projection)",
    )
    _range("samples_per_class", c.samples_per_class, c.samples_per_class >= 2, "an integer >= 2")
    _range("devices", c.devices, c.devices >= 0, "an integer >= 0")
    _range("landscape_points", c.landscape_points, c.landscape_points >= 3, "an integer >= 3")
    _range("landscape_examples", c.landscape_examples, c.landscape_examples >= 8, ">= 8")
    _range("landscape_radius", c.landscape_radius, c.landscape_radius > 0, "> 0")
    _range("curvature_k", c.curvature_k, c.curvature_k >= 1, "an integer >= 1")
    _range("curvature_probes", c.curvature_probes, c.curvature_probes >= 2, "an integer >= 2")
    _range("curvature_every", c.curvature_every, c.curvature_every >= 0, "an integer >= 0 (0 = off)")
    _range("sharpness_rho", c.sharpness_rho, c.sharpness_rho > 0, "> 0")
    _range("sharpness_steps", c.sharpness_steps, c.sharpness_steps >= 1, "an integer >= 1")
    _range("sam_rho", c.sam_rho, c.sam_rho >= 0, ">= 0 (0 = off)")
    if c.curvature_per_class and spec.task != "classification":
        raise ConfigError("curvature_per_class=true needs a classification loss; "
                          f"{c.loss} is a {spec.task} loss")
    _range("image_size", c.image_size, c.image_size is None or c.image_size >= 8,
           "an integer >= 8, or none (the dataset's size)")
    _range("cache_budget", c.cache_budget, 0 < c.cache_budget <= 1, "0 < cache_budget <= 1")
    _range("head_lr_mult", c.head_lr_mult, c.head_lr_mult > 0, "> 0")
    _range("warmup_epochs", c.warmup_epochs, 0 <= c.warmup_epochs < c.epochs,
           f"an integer >= 0 and < epochs={c.epochs}")
    _range("weight_decay", c.weight_decay, c.weight_decay is None or c.weight_decay >= 0,
           ">= 0, or none (the optimiser's default)")
    _range("stage2_epochs", c.stage2_epochs, c.stage2_epochs >= 1, "an integer >= 1")
    if spec.task != "classification" and (c.sampler != "instance" or c.stage2 != "none"):
        raise ConfigError(f"sampler={c.sampler} and stage2={c.stage2} are for classification; "
                          f"{c.loss} is a {spec.task} loss (use sampler=instance stage2=none)")
    if c.stage2 not in ("none", *COSINE_STAGE2) and c.resolved_head() == "cosine":
        raise ConfigError(
            f"stage2={c.stage2} leaves a cosine head unchanged ({c.loss} with head={c.head}: "
            "its class weights are unit-normalised); with a cosine head choose stage2="
            f"{' or '.join(COSINE_STAGE2)}, or head=dense")
    if spec.task == "retrieval" and c.head == "cosine":
        raise ConfigError("head=cosine is a classification head; retrieval losses take "
                          "embeddings (head=auto)")
    if spec.task == "retrieval":
        k = c.samples_per_class
        if c.batch_size % k or c.batch_size // k < 2:
            raise ConfigError(
                f"batch_size={c.batch_size} must split into P×K batches with "
                f"K=samples_per_class={k} and P >= 2 classes; valid: a multiple of {k} "
                f">= {2 * k}"
            )
    check_model(c.resolved_model(), c.pretrained, c.image_size)  # registry, weights, minimum
    check_warmup(c.resolved_model(), spec.output, c.embedding_dim, c.warmup_epochs)
    _validate_regression(c, spec.task)


def _validate_regression(c, task: str) -> None:
    """The regression keys. (Whether the dataset's targets fit the loss's task is checked
    when the data loads, before any run: `Config(loss="mse")` alone is a valid object.)"""
    widths = c.hidden.split(",")
    if not all(w.strip().isdigit() and int(w) >= 1 for w in widths):
        raise ConfigError(f"hidden={c.hidden!r} is not valid; valid: widths >= 1, "
                          "comma-separated (e.g. hidden=256,256)")
    _range("dropout", c.dropout, c.dropout is None or 0 <= c.dropout < 1,
           "0 <= dropout < 1, or none (the model's default)")
    _range("outliers", c.outliers, 0 <= c.outliers < 1, "0 <= outliers < 1")
    table = c.dataset.startswith(data_catalog.REGRESSION_PREFIXES)
    for key in ("target", "weight"):
        if getattr(c, key) is not None and not table:
            raise ConfigError(f"{key}={getattr(c, key)} names a column of a csv: dataset; "
                              f"dataset={c.dataset} has none (valid: dataset=csv:PATH)")
    if table and c.target is None:
        raise ConfigError(f"dataset={c.dataset} needs target=COLUMN, the column to predict")
    if task != "regression" and (c.outliers or c.drop_nan):
        raise ConfigError(f"outliers and drop_nan are for regression; {c.loss} is a {task} "
                          "loss (leave outliers=0 drop_nan=false)")
    if task == "regression" and (c.imbalance != 1 or c.head != "auto"):
        raise ConfigError(f"imbalance={c.imbalance:g} and head={c.head} are for "
                          f"classification; {c.loss} is a regression loss (leave imbalance=1 "
                          "head=auto; for robustness to bad targets try outliers=)")
    if data_catalog.dataset_task(c.dataset) == "regression" and c.augment not in ("auto",
                                                                                  "none"):
        raise ConfigError(f"augment={c.augment} transforms images; dataset={c.dataset} is a "
                          "table (valid: augment=auto or none)")
