"""Typed training configuration: every field, its default, its valid values and one line of
documentation, in one place; a loss's own hyperparameters come from its registry entry.

A run is fully described by a `Config`. The command line is `key=value` overrides of these
defaults (`python -m training.train loss=focal gamma=1`): a key that is a `Config` field sets
it, a key that is an argument of the chosen loss goes to `loss_args` (also written
`loss.gamma=1`). Unknown keys, values of the wrong type and values out of range raise
`ConfigError` naming the key and the valid choices, before any data is loaded or any MLflow
run is created (`training.config_checks`). This module imports no Keras: `--help` reads it
in milliseconds.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields

from training.config_checks import unknown_key_message, validate
from training.data import catalog as data_catalog
from training.data.samplers import SAMPLERS
from training.errors import ConfigError
from training.keyvalue import pairs
from training.loss_catalog import import_plugins, loss_spec
from training.metric_catalog import selection_metrics

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
JIT_CHOICES = ("auto", "true", "false")
STRATEGIES = ("none", "mirrored", "multi_worker")
# Training-time augmentation policies of models.augment.POLICIES, plus "auto" = per task.
# crop_flip and resized_crop run in tf.data (training.data.augment), outside the logged model.
AUGMENTS = ("auto", "none", "light", "strong", "crop_flip", "resized_crop")
PIPELINE_AUGMENTS = ("crop_flip", "resized_crop")
# Where decoded, resized images live between epochs (training.data.cache).
CACHES = ("auto", "memory", "disk", "none")
AUTO_AUGMENT = {"classification": "none", "retrieval": "strong", "regression": "none"}
# Classification head: "auto" = what the loss's entry asks for (LDAM: cosine), else dense.
HEADS = ("auto", "dense", "cosine")
# Second stage after training (training/run/stage2.py; Kang et al. 2020, Alshammari et al. 2022).
STAGE2 = ("none", "tau_norm", "crt", "lws", "weight_balancing")
# The validation metric a run is selected on (early stopping, tuning objective), per task: the
# metric catalogue's (training/metric_catalog.py), under the name the trainer and tuner import.
SELECTION_METRIC = selection_metrics()
# Keys of configs written before losses owned their hyperparameters (flat fields); a legacy
# config.json maps those the chosen loss takes into `loss_args` and drops the rest.
LEGACY_LOSS_KEYS = ("gamma", "alpha", "beta", "margin", "mining", "distance", "soft")


def _f(default, doc: str, choices: tuple = ()):
    """A field with its one-line documentation (and valid choices) for `--help`."""
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"doc": doc, "choices": choices})
    return field(default=default, metadata={"doc": doc, "choices": choices})


@dataclass(frozen=True)
class Config:
    # --- what to train -------------------------------------------------------------------
    loss: str = _f("ce", "a registered loss name, or module:Class of your own keras Loss")
    loss_args: dict = _f({}, "the chosen loss's arguments (given as key=value or loss.key=value)")
    plugins: str | None = _f(None, "comma-separated modules to import first (they register losses)")
    dataset: str = _f("digits", "a data source: digits | diabetes | csv:PATH | idx:PATH | folder:PATH | list:TRAIN[,TEST] | a protocol | a TFDS name | module:function")
    target: str | None = _f(None, "csv: the column to predict (regression)")
    weight: str | None = _f(None, "csv: a column of per-row weights >= 0 (weighted least squares, via sample_weight)")
    outliers: float = _f(0.0, "regression: share of training targets shifted by std(y)·Cauchy (seeded); val/test stay clean")
    drop_nan: bool = _f(False, "regression tables: drop rows with NaN/inf (counted and logged) instead of stopping")
    target_scale: bool = _f(True, "regression: the head predicts targets standardised by the training median and MAD, mapped back inside the model")
    data_dir: str | None = _f(None, "TFDS data_dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    data_root: str | None = _f(None, "list: sources: the folder the listed image paths are relative to")
    image_size: int | None = _f(None, "model input size (square); none = the dataset's size when fixed, else 224")
    cache: str = _f("auto", "decoded, resized images: auto (memory within cache_budget, else disk) | memory | disk | none", CACHES)
    cache_budget: float = _f(0.25, "cache=auto: share of RAM the in-memory cache may use")
    skip_bad_images: bool = _f(False, "skip unreadable images (counted and logged) instead of stopping")
    model: str = _f("auto", "a registered model (--help lists them) or module:function of your own; auto = mlp for tables (csv:, diabetes), else small_cnn")
    hidden: str = _f("256,256", "mlp: widths of the hidden layers, comma-separated")
    dropout: float | None = _f(None, "dropout before the head (mlp: after each hidden layer); none = the model's default")
    pretrained: str = _f("none", "backbone weights: none | imagenet | PATH (.weights.h5 or .keras)")
    freeze_bn: bool = _f(False, "BatchNorm keeps its (pretrained) statistics")
    head_lr_mult: float = _f(1.0, "learning-rate multiple of the head and proxies over the backbone")
    warmup_epochs: int = _f(0, "epochs that train only the head (backbone frozen) before everything")
    # --- optimisation --------------------------------------------------------------------
    epochs: int = _f(15, "training epochs")
    batch_size: int = _f(64, "batch size; retrieval: P×K with K = samples_per_class")
    learning_rate: float = _f(2e-3, "peak learning rate")
    lr_schedule: str = _f("cosine", "learning-rate schedule (cosine decays to 1 % of the peak)", SCHEDULES)
    optimizer: str = _f("adam", "optimiser (adamw: weight decay 1e-4; sgd: Nesterov 0.9)", OPTIMIZERS)
    l2: float = _f(0.0, "ridge penalty λ‖w‖² on every kernel")
    weight_decay: float | None = _f(None, "decoupled weight decay of the optimiser; none = adamw 1e-4, else 0")
    seed: int = _f(0, "seed of split, initial weights, batch order and augmentation")
    val_fraction: float = _f(0.1, "stratified share of train held out for validation")
    imbalance: float = _f(1.0, "long-tail ratio IR of the training split; 1 = as shipped")
    early_stopping: int = _f(0, "stop after this many epochs without improvement of the task's selection metric; 0 = off")
    # Retrieval: size of a dense projection of the backbone's features; none = the model's
    # default (models/catalog.py): on small_cnn no projection, the normalised flattened map is
    # the embedding (1152-d on 28×28), which generalises far better to held-out classes (MNIST
    # p@1 0.981 vs 0.938 with 64; models/heads.py); on every other backbone 128 (the papers').
    embedding_dim: int | None = _f(None, "retrieval: dense projection size; none = the model's default (small_cnn: the normalised trunk map; other backbones: 128)")
    # auto = "strong" for retrieval (p@1 +0.03 on held-out classes, models/augment.py),
    # "none" for classification.
    augment: str = _f("auto", "training augmentation (auto: strong for retrieval, none for classification)", AUGMENTS)
    head: str = _f("auto", "classification head: dense logits or cosine (normalised features × normalised weights)", HEADS)
    # Retrieval: K of the P×K sampler. 16 so that P = 64 / 16 = 4 fits the 5 training classes
    # of a 10-class dataset; datasets with many classes can use more, smaller groups.
    samples_per_class: int = _f(16, "retrieval: K images per class in a P×K batch")
    # --- compute -------------------------------------------------------------------------
    precision: str = _f("float32", "Keras dtype policy (losses and last layer stay float32)", PRECISIONS)
    jit_compile: str = _f("auto", "XLA: auto = Keras's choice", JIT_CHOICES)
    strategy: str = _f("none", "tf.distribute strategy", STRATEGIES)
    devices: int = _f(0, "mirrored on CPU: split the CPU into N logical devices (0 = off)")
    # --- tracking and outputs ------------------------------------------------------------
    experiment: str | None = _f(None, "MLflow experiment (default: <dataset>-<task>)")
    run_name: str | None = _f(None, "MLflow run name (default: <loss>-seed<seed>)")
    checkpoint_dir: str = _f("checkpoints", "per-run folder <checkpoint_dir>/<run_id>/ (relative: to the repository root)")
    resume: str | None = _f(None, "run id to continue from its last checkpoint")
    system_metrics: bool = _f(False, "log MLflow system metrics (CPU, memory, GPU)")
    landscape: bool = _f(False, "compute the loss landscape at the end of training")
    landscape_points: int = _f(21, "landscape grid is points × points")
    landscape_examples: int = _f(512, "fixed training subset the landscape is evaluated on")
    landscape_radius: float = _f(1.0, "landscape grid half-width, in filter-normalised units")
    curvature: bool = _f(False, "Hessian top-k and min eigenvalues, trace, worst-case sharpness and spectral density at the end (implied by landscape)")
    curvature_k: int = _f(3, "curvature: number of top Hessian eigenvalues")
    curvature_probes: int = _f(32, "curvature: Hutchinson probes of the Hessian trace")
    curvature_per_class: bool = _f(False, "classification: top and min eigenvalue of each class's loss")
    curvature_every: int = _f(0, "curvature measures every E epochs as metrics at step = epoch; 0 = end only")
    sharpness_rho: float = _f(0.05, "curvature: radius ρ of the worst-case sharpness ball")
    sharpness_steps: int = _f(5, "curvature: projected ascent steps of the worst-case sharpness")
    sharpness_adaptive: bool = _f(False, "curvature: ASAM's scaled ball ‖ε/(|w|+0.01)‖ ≤ ρ")
    sam_rho: float = _f(0.0, "SAM: ascent radius ρ (Foret et al. 2021; 0.05 is theirs); 0 = off")
    sam_adaptive: bool = _f(False, "SAM: ASAM's scale-invariant ascent (Kwon et al. 2021; try ρ = 0.5)")
    # --- long tail beyond the loss: sampler and second stage -------------------------------
    sampler: str = _f("instance", "classification: class c drawn ∝ n_c^q, instance q=1 | class_balanced q=0 | sqrt q=½ | progressive q 1→0", SAMPLERS)
    stage2: str = _f("none", "classification: a second stage after training, none | tau_norm | crt | lws | weight_balancing (a cosine head: crt | lws)", STAGE2)
    stage2_epochs: int = _f(10, "epochs of the crt, lws and weight_balancing stage (class-balanced batches)")

    def __post_init__(self) -> None:
        validate(self)

    @property
    def spec(self):
        """The chosen loss's registry entry (`losses.spec.LossSpec`)."""
        return loss_spec(self.loss)

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def classes_per_batch(self) -> int:
        """P of the P×K sampler."""
        return self.batch_size // self.samples_per_class

    def _augment(self) -> str:
        """`augment` with "auto" resolved: the protocol's (crop_flip, resized_crop), else per
        task."""
        if self.augment != "auto":
            return self.augment
        entry = data_catalog.protocol(self.dataset)
        return entry.augment if entry is not None else AUTO_AUGMENT[self.task]

    def resolved_augment(self) -> str:
        """The augmentation layers inside the model ("none" when tf.data augments)."""
        policy = self._augment()
        return "none" if policy in PIPELINE_AUGMENTS else policy

    def pipeline_augment(self) -> str:
        """The augmentation tf.data applies (crop_flip, resized_crop), else "none"."""
        policy = self._augment()
        return policy if policy in PIPELINE_AUGMENTS else "none"

    def resolved_model(self) -> str:
        """`model` with "auto" resolved: mlp for a table (csv:, diabetes), else small_cnn."""
        if self.model != "auto":
            return self.model
        return "mlp" if data_catalog.dataset_task(self.dataset) == "regression" else "small_cnn"

    def hidden_widths(self) -> tuple[int, ...]:
        """`hidden` as widths: "256,256" → (256, 256)."""
        return tuple(int(w) for w in self.hidden.split(","))

    def model_options(self) -> dict[str, typing.Any]:
        """The keywords a model's builder may take (its entry's `options` picks)."""
        options: dict[str, typing.Any] = {"hidden": self.hidden_widths()}
        if self.dropout is not None:
            options["dropout"] = self.dropout
        return options

    def resolved_head(self) -> str:
        """dense or cosine (classification); the loss's entry decides under "auto"."""
        if self.head != "auto":
            return self.head
        return "cosine" if self.spec.output == "cosine_logits" else "dense"

    def resolved_loss_args(self) -> dict[str, typing.Any]:
        """Every setting of the chosen loss: the given arguments over the entry's defaults,
        and the values a preset fixes (`triplet_hard`: mining=hard)."""
        return self.spec.settings(self.loss_args)

    def to_dict(self) -> dict[str, typing.Any]:
        values = dataclasses.asdict(self)
        values["loss_args"] = dict(sorted(self.loss_args.items()))
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, typing.Any]) -> Config:
        """Build from typed values (e.g. a logged config.json); unknown keys are rejected.

        A config.json of the flat era (`gamma`, `margin`, ... as fields) still loads: the
        keys the chosen loss takes move into `loss_args`, the others are dropped.
        """
        values = dict(values)
        legacy = {k: values.pop(k) for k in LEGACY_LOSS_KEYS if k in values}
        if legacy:
            import_plugins(values.get("plugins"))
            spec = loss_spec(values.get("loss", "ce"))
            args = dict(values.get("loss_args") or {})
            for key, value in legacy.items():
                if key in spec.arg_names and value is not None:
                    args.setdefault(key, value)
            values["loss_args"] = args
        _reject_unknown(values.keys())
        return cls(**values)

    def replace(self, **changes: typing.Any) -> Config:
        _reject_unknown(changes.keys())
        return dataclasses.replace(self, **changes)


def field_names() -> list[str]:
    return [f.name for f in fields(Config)]


def config_fields() -> list[dataclasses.Field]:
    """The fields with their types and docs (what `--help` prints)."""
    return list(fields(Config))


def parse_overrides(args: typing.Iterable[str], base: Config | None = None) -> Config:
    """`["loss=focal", "gamma=1"]` → Config. Values are parsed by the field's declared type,
    loss arguments by their registry entry (so their order on the line does not matter)."""
    types_by_name = typing.get_type_hints(Config)
    changes: dict[str, typing.Any] = {}
    pending: dict[str, str] = {}
    for key, raw in pairs(args, field_names()):
        if key == "loss_args":
            raise ConfigError("loss_args is not set directly: pass each argument as key=value")
        if key.startswith("loss.") or key not in types_by_name:
            pending[key.removeprefix("loss.")] = raw
        else:
            changes[key] = _coerce(key, raw, types_by_name[key])
    base = base or Config()
    if "loss" in changes and changes["loss"] != base.loss:
        changes.setdefault("loss_args", {})  # another loss: the base's arguments do not apply
    if pending:
        import_plugins(changes.get("plugins", base.plugins))
        spec = loss_spec(changes.get("loss", base.loss))
        loss_args = dict(changes.get("loss_args", base.loss_args))
        for key, raw in pending.items():
            if key not in spec.arg_names:
                raise ConfigError(_unknown_key_message(key, spec))
            try:
                loss_args[key] = spec.arg(key).parse(raw)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        changes["loss_args"] = loss_args
    return dataclasses.replace(base, **changes)


# --- parsing ---------------------------------------------------------------------------


def _unknown_key_message(key: str, spec=None) -> str:
    return unknown_key_message(key, field_names(), spec)


def _reject_unknown(keys: typing.Iterable[str]) -> None:
    valid = field_names()
    for key in keys:
        if key not in valid:
            raise ConfigError(_unknown_key_message(key))


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
