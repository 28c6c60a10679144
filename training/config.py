"""Typed training configuration: every field, its default and its valid range, in one place.

A run is fully described by a `Config`. The command line is `key=value` overrides of these
defaults (`python -m training.train loss=focal gamma=1`); unknown keys, values of the wrong
type and values out of range raise `ConfigError` naming the key and the valid choices, before
any data is loaded or any MLflow run is created.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from dataclasses import dataclass, fields

# The loss picks the task: classification losses train `models.small_cnn` on logits,
# metric-learning losses train `models.embedding_net` on held-out-class retrieval.
TASKS = {
    "ce": "classification",
    "balanced_ce": "classification",
    "focal": "classification",
    "triplet": "retrieval",
    "contrastive": "retrieval",
}
MININGS = ("semi-hard", "hard", "all")
DISTANCES = ("euclidean", "squared", "cosine")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
JIT_CHOICES = ("auto", "true", "false")
STRATEGIES = ("none", "mirrored", "multi_worker")
# Training-time augmentation policies of models.augment.POLICIES, plus "auto" = per task.
AUGMENTS = ("auto", "none", "light", "strong")
AUTO_AUGMENT = {"classification": "none", "retrieval": "strong"}


class ConfigError(ValueError):
    """A bad configuration value; the message names the key and the valid choices."""


@dataclass(frozen=True)
class Config:
    # --- what to train -------------------------------------------------------------------
    loss: str = "ce"  # one of TASKS
    dataset: str = "digits"  # digits | idx:PATH | a TFDS image-classification name
    data_dir: str | None = None  # TFDS data_dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)
    # --- optimisation --------------------------------------------------------------------
    epochs: int = 15
    batch_size: int = 64  # retrieval: P×K with K = samples_per_class
    learning_rate: float = 2e-3
    lr_schedule: str = "cosine"
    optimizer: str = "adam"
    l2: float = 0.0  # ridge penalty λ‖w‖² on every kernel
    seed: int = 0
    val_fraction: float = 0.1
    imbalance: float = 1.0  # long-tail ratio IR of the training split; 1 = as shipped
    # --- loss hyperparameters (only the chosen loss's are used; all are logged) ----------
    gamma: float = 2.0  # focal
    alpha: float | None = None  # focal: scalar class weight (None = 1)
    beta: float | None = None  # balanced_ce: None = inverse frequency, else Cui et al.
    margin: float | None = None  # triplet (default 0.2) / contrastive (default 1.0)
    mining: str = "semi-hard"  # triplet
    distance: str = "euclidean"  # triplet / contrastive
    soft: bool = False  # triplet: softplus instead of hinge
    # Retrieval: size of a dense projection of the trunk's flattened map; none = no
    # projection, the normalised map is the embedding (1152-d on 28×28). none generalises
    # far better to held-out classes (MNIST p@1 0.981 vs 0.938 with 64; models/heads.py).
    embedding_dim: int | None = None
    # auto = "strong" for retrieval (p@1 +0.03 on held-out classes, models/augment.py),
    # "none" for classification.
    augment: str = "auto"
    # Retrieval: K of the P×K sampler. 16 so that P = 64 / 16 = 4 fits the 5 training classes
    # of a 10-class dataset; datasets with many classes can use more, smaller groups.
    samples_per_class: int = 16
    # --- compute -------------------------------------------------------------------------
    precision: str = "float32"
    jit_compile: str = "auto"
    strategy: str = "none"
    devices: int = 0  # mirrored on CPU: split the CPU into N logical devices (0 = off)
    # --- tracking and outputs ------------------------------------------------------------
    experiment: str | None = None  # default: "<dataset>-<task>"
    run_name: str | None = None  # default: "<loss>-seed<seed>"
    checkpoint_dir: str = "checkpoints"  # per-run folder <checkpoint_dir>/<run_id>/
    resume: str | None = None  # run id to continue from its last checkpoint
    landscape: bool = False  # compute the loss landscape at the end of training
    landscape_points: int = 21  # grid is points × points
    landscape_examples: int = 512  # fixed training subset the landscape is evaluated on
    landscape_radius: float = 1.0  # grid half-width, in filter-normalised units

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def task(self) -> str:
        return TASKS[self.loss]

    @property
    def classes_per_batch(self) -> int:
        """P of the P×K sampler."""
        return self.batch_size // self.samples_per_class

    def resolved_augment(self) -> str:
        """The augmentation policy the model gets ("auto" resolved for the task)."""
        return AUTO_AUGMENT[self.task] if self.augment == "auto" else self.augment

    def resolved_margin(self) -> float:
        if self.margin is not None:
            return self.margin
        return 0.2 if self.loss == "triplet" else 1.0

    def to_dict(self) -> dict[str, typing.Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, typing.Any]) -> Config:
        """Build from typed values (e.g. a logged config.json); unknown keys are rejected."""
        _reject_unknown(values.keys())
        return cls(**values)

    def replace(self, **changes: typing.Any) -> Config:
        _reject_unknown(changes.keys())
        return dataclasses.replace(self, **changes)


def field_names() -> list[str]:
    return [f.name for f in fields(Config)]


def parse_overrides(args: typing.Iterable[str], base: Config | None = None) -> Config:
    """`["loss=focal", "gamma=1"]` → Config. Values are parsed by the field's declared type."""
    types_by_name = typing.get_type_hints(Config)
    changes: dict[str, typing.Any] = {}
    for arg in args:
        key, sep, raw = arg.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {arg!r}; valid keys: {', '.join(field_names())}")
        _reject_unknown([key])
        changes[key] = _coerce(key, raw.strip(), types_by_name[key])
    return dataclasses.replace(base or Config(), **changes)


# --- parsing ---------------------------------------------------------------------------


def _reject_unknown(keys: typing.Iterable[str]) -> None:
    valid = field_names()
    for key in keys:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {key!r}{hint}; valid keys: {', '.join(valid)}")


def _coerce(key: str, raw: str, annotation: typing.Any) -> typing.Any:
    """Parse one command-line value. No eval: only int/float/bool/str and `none`."""
    args = typing.get_args(annotation)
    optional = type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else annotation
    if optional and raw.lower() in ("none", "null", ""):
        return None
    try:
        if base is bool:
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if base is int:
            return int(raw)
        if base is float:
            return float(raw)
    except ValueError:
        kind = {bool: "a boolean (true/false)", int: "an integer", float: "a number"}[base]
        raise ConfigError(f"{key}={raw!r} is not {kind}") from None
    return raw


# --- validation ------------------------------------------------------------------------


def _choice(key: str, value: typing.Any, choices: typing.Iterable[str]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(choices)}")


def _range(key: str, value: float | None, ok: bool, valid: str) -> None:
    if value is not None and not ok:
        raise ConfigError(f"{key}={value!r} is out of range; valid: {valid}")


def _check_types(config: Config) -> None:
    hints = typing.get_type_hints(Config)
    for f in fields(Config):
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


def _validate(c: Config) -> None:
    _check_types(c)
    _choice("loss", c.loss, TASKS)
    _choice("mining", c.mining, MININGS)
    _choice("distance", c.distance, DISTANCES)
    _choice("optimizer", c.optimizer, OPTIMIZERS)
    _choice("lr_schedule", c.lr_schedule, SCHEDULES)
    _choice("precision", c.precision, PRECISIONS)
    _choice("jit_compile", c.jit_compile, JIT_CHOICES)
    _choice("strategy", c.strategy, STRATEGIES)
    _choice("augment", c.augment, AUGMENTS)
    if not c.dataset:
        raise ConfigError("dataset='' is empty; use digits, idx:PATH or a TFDS name")
    _range("epochs", c.epochs, c.epochs >= 1, "an integer >= 1")
    _range("batch_size", c.batch_size, c.batch_size >= 2, "an integer >= 2")
    _range("learning_rate", c.learning_rate, c.learning_rate > 0, "> 0")
    _range("l2", c.l2, c.l2 >= 0, ">= 0")
    _range("seed", c.seed, c.seed >= 0, "an integer >= 0")
    _range("val_fraction", c.val_fraction, 0 < c.val_fraction < 0.5, "0 < val_fraction < 0.5")
    _range("imbalance", c.imbalance, c.imbalance >= 1, ">= 1 (1 = no imbalance)")
    _range("gamma", c.gamma, c.gamma >= 0, ">= 0 (0 = cross entropy)")
    _range("alpha", c.alpha, c.alpha is None or c.alpha > 0, "> 0, or none")
    _range("beta", c.beta, c.beta is None or 0 <= c.beta < 1, "0 <= beta < 1, or none")
    _range("margin", c.margin, c.margin is None or c.margin >= 0, ">= 0")
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
    if TASKS[c.loss] == "retrieval":
        k = c.samples_per_class
        if c.batch_size % k or c.batch_size // k < 2:
            raise ConfigError(
                f"batch_size={c.batch_size} must split into P×K batches with "
                f"K=samples_per_class={k} and P >= 2 classes; valid: a multiple of {k} "
                f">= {2 * k}"
            )
