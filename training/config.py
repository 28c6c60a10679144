"""Typed training configuration: every field, its default, its valid values and one line of
documentation, in one place; a loss's own hyperparameters come from its registry entry.

A run is fully described by a `Config`. The command line is `key=value` overrides of these
defaults (`python -m training.train loss=focal gamma=1`): a key that is a `Config` field sets
it, a key that is an argument of the chosen loss goes to `loss_args` (also written
`loss.gamma=1`). Unknown keys, values of the wrong type and values out of range raise
`ConfigError` naming the key and the valid choices, before any data is loaded or any MLflow
run is created. This module imports no Keras: `--help` reads it in milliseconds.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
from dataclasses import dataclass, field, fields

from training.data import catalog as data_catalog
from training.data.samplers import SAMPLERS
from training.errors import ConfigError
from training.keyvalue import pairs
from training.loss_catalog import catalog, import_plugins, loss_spec
from training.metric_catalog import selection_metrics
from training.model_catalog import check as check_model
from training.model_catalog import check_warmup

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
# A cosine head's class weights are unit-normalised, so τ-norm and MaxNorm leave it as it is:
# only these stages change it.
COSINE_STAGE2 = ("crt", "lws")
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
        _validate(self)

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
    valid = field_names()
    candidates = valid + list(spec.arg_names if spec else ())
    close = difflib.get_close_matches(key, candidates, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    takes = f"; {spec.name} takes {', '.join(spec.arg_names) or 'no arguments'}" if spec else ""
    return f"unknown config key {key!r}{hint}{takes}; valid keys: {', '.join(valid)}"


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


def _validate_loss(c: Config):
    import_plugins(c.plugins)
    if not c.loss:
        raise ConfigError(f"loss='' is empty; choose one of: {', '.join(catalog().names())}")
    spec = loss_spec(c.loss)
    try:
        checked = spec.resolve(c.loss_args)
    except ValueError as exc:
        unknown = [k for k in c.loss_args if k not in spec.arg_names]
        raise ConfigError(_unknown_key_message(unknown[0], spec) if unknown else str(exc)) from None
    # Stored as checked (ints widened to float), only the keys given: defaults stay the entry's.
    object.__setattr__(c, "loss_args", {k: checked[k] for k in sorted(c.loss_args)})
    return spec


def _check_finite(config: Config) -> None:
    """Every float field is a finite number: `learning_rate=1e309` parses as inf."""
    for f in fields(Config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{f.name}={value!r} is not a finite number")


def _validate(c: Config) -> None:
    _check_types(c)
    _check_finite(c)
    spec = _validate_loss(c)
    for f in fields(Config):
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


def _validate_regression(c: Config, task: str) -> None:
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
