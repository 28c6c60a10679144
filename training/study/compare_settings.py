"""What a compare trains (`training.study.compare`): its settings, parsed and checked before
TensorFlow or MLflow is imported, its variants (a loss, a preset, a swept value) and every
child run's Config."""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass

from training.cli import pairs
from training.config import SELECTION_METRIC, Config, ConfigError, field_names, parse_overrides
from training.loss_catalog import catalog, import_plugins, loss_spec
from training.study import tune as tuning

# Per-task settings shared by every variant of the task (a user's Config key overrides them,
# still for all alike). Retrieval: P=4 classes × K=16 images = 64, the classification batch
# size; P=4 fits the 5 training classes of any 10-class dataset (config's K=4 would need P=16).
TASK_SETTINGS: dict[str, dict[str, typing.Any]] = {
    "classification": {"batch_size": 64},
    "retrieval": {"batch_size": 64, "samples_per_class": 16},
}

DEFAULT_IMBALANCE = {"digits": 10.0}  # every other dataset: FALLBACK_IMBALANCE
FALLBACK_IMBALANCE = 100.0
RESERVED = ("loss", "seed", "run_name", "resume")  # set per run by the compare
SWEEP_REFUSED = (*RESERVED, "dataset", "experiment", "plugins", "loss_args")


def default_variants() -> tuple[str, ...]:
    """The registry's compare variants (entries with `in_compare`), classification first."""
    entries = catalog().specs()
    return tuple(s.name for t in ("classification", "retrieval") for s in entries
                 if s.task == t and s.in_compare)


@dataclass(frozen=True)
class CompareSettings:
    """What one compare trains. `overrides` are Config keys (or loss arguments) applied to
    every run (a loss argument: to every variant whose loss takes it)."""

    dataset: str = "digits"
    seeds: int = 3
    losses: tuple[str, ...] = dataclasses.field(default_factory=default_variants)
    epochs: int = Config.epochs
    imbalance: float | None = None  # None: DEFAULT_IMBALANCE / FALLBACK_IMBALANCE
    landscape: bool = False
    experiment: str | None = None  # None: compare-<dataset>
    overrides: tuple[tuple[str, str], ...] = ()
    tune: int = 0  # trials per variant; 0 = train at the defaults
    tune_epochs: int | None = None  # epochs per trial; None = `epochs`
    tune_keys: tuple[str, ...] = ()  # shared settings tuned too
    sweep: tuple[str, tuple[str, ...]] | None = None  # (key, raw values)

    def resolved_imbalance(self) -> float:
        if self.imbalance is not None:
            return self.imbalance
        return DEFAULT_IMBALANCE.get(self.dataset, FALLBACK_IMBALANCE)

    def dataset_label(self) -> str:
        """The dataset as a name part: "digits", "idx-mnist-t10k" (an IDX folder's last part)."""
        dataset = self.dataset
        if dataset.startswith("idx:"):
            dataset = "idx-" + dataset[4:].rstrip("/").rsplit("/", 1)[-1]
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset)

    def experiment_name(self) -> str:
        return self.experiment or "compare-" + self.dataset_label()

    def parent_name(self) -> str:
        """The parent run's name, short enough for the UI's run list: "compare-digits-3 losses"
        (a sweep: "... variants"); the full list is its `losslab.losses` tag."""
        n = len(variants(self))
        noun = ("variant" if self.sweep else "loss") + ("" if n == 1 else
                                                        "s" if self.sweep else "es")
        return f"compare-{self.dataset_label()}-{n} {noun}"

    def to_dict(self) -> dict[str, typing.Any]:
        """Flat, loggable: the parent run's params (losses as "ce,focal")."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["losses"] = ",".join(self.losses)
        values["imbalance"] = self.resolved_imbalance()
        values["experiment"] = self.experiment_name()
        values.update(dict(values.pop("overrides")))
        for key in ("tune", "tune_epochs", "tune_keys", "sweep"):  # only when used
            values.pop(key)
        if self.tune:
            values.update(tune=self.tune, tune_epochs=self.tune_epochs or self.epochs,
                          tune_keys=",".join(self.tune_keys) or "none")
        if self.sweep:
            values["sweep"] = f"{self.sweep[0]}={','.join(self.sweep[1])}"
            values["variants"] = ",".join(v.name for v in variants(self))
        return values


COMPARE_KEYS = ("dataset", "seeds", "losses", "epochs", "imbalance", "landscape", "experiment",
                "tune", "tune_epochs", "tune_keys", "sweep")


@dataclass(frozen=True)
class Variant:
    """One compared thing: a loss, at one value of the sweep (`sweep`: (key, typed value))."""

    name: str  # "ce", or "ce[l2=0.0001]" in a sweep
    loss: str
    sweep: tuple[str, typing.Any] | None = None


def variants(settings: CompareSettings) -> list[Variant]:
    """The compare's variants in order: each loss, or each loss × sweep value."""
    if not settings.sweep:
        return [Variant(loss, loss) for loss in settings.losses]
    key, raws = settings.sweep
    out = []
    for loss in settings.losses:
        if key not in field_names() and key not in loss_spec(loss).arg_names:
            out.append(Variant(loss, loss))  # the loss does not take the swept argument
            continue
        values = [_sweep_value(loss, key, raw) for raw in raws]
        labels = [sweep_label(v) for v in values]
        if len(set(labels)) < len(labels):
            raise ConfigError(f"sweep={key}={','.join(raws)} repeats a value ({', '.join(labels)})")
        out += [Variant(f"{loss}[{key}={label}]", loss, (key, value))
                for label, value in zip(labels, values, strict=True)]
    return out


def _sweep_value(loss: str, key: str, raw: str) -> typing.Any:
    """`raw` parsed as the Config field or the loss argument `key` is (ConfigError if bad)."""
    config = parse_overrides([f"loss={loss}", f"{key}={raw}"])
    return getattr(config, key) if key in field_names() else config.loss_args[key]


def sweep_label(value: typing.Any) -> str:
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_settings(argv: typing.Iterable[str]) -> CompareSettings:
    """`["losses=ce,focal", "seeds=2", "learning_rate=1e-3"]` → CompareSettings.

    Raises ConfigError naming the bad key or value and the valid choices.
    """
    own: dict[str, typing.Any] = {}
    shared: list[tuple[str, str]] = []
    for key, raw in pairs(argv, [*COMPARE_KEYS, "any config key or loss argument"]):
        if key in RESERVED:
            raise ConfigError(f"{key} is set per run by the compare; use losses= "
                              f"({', '.join(default_variants())}) and seeds= instead")
        if key in COMPARE_KEYS:
            own[key] = raw
        else:
            shared.append((key, raw))
    # Plugins first: they may register the losses that losses= names.
    import_plugins(dict(shared).get("plugins"))
    fixed = {key for key, _ in shared}
    own = {key: _parse_own(key, raw, fixed) for key, raw in own.items()}
    settings = CompareSettings(**own, overrides=tuple(shared))
    _check_shared_loss_args(settings)
    _check_tune_and_sweep(settings)
    child_configs(settings)  # every child Config validates (e.g. P×K vs batch_size)
    return settings


def _check_tune_and_sweep(settings: CompareSettings) -> None:
    if settings.tune and settings.sweep:
        raise ConfigError("tune= and sweep= do not combine (each swept value would need its "
                          "own study); run a tuned compare and a sweep separately")
    if (settings.tune_keys or settings.tune_epochs) and not settings.tune:
        raise ConfigError("tune_keys= and tune_epochs= need tune=N (trials per loss)")
    if settings.tune:
        tuning.check_storage()  # a tracking server needs OPTUNA_STORAGE
    if settings.tune and not any(
            tuning.search_space(c, settings.tune_keys) for _, c in child_configs(settings)):
        raise ConfigError(f"tune={settings.tune} tunes nothing: no compared loss has a search "
                          f"space; name shared settings with tune_keys="
                          f"{','.join(tuning.SHARED_RANGES)}")
    if settings.sweep:
        key = settings.sweep[0]
        if key not in field_names() and not any(
                key in loss_spec(n).arg_names for n in settings.losses):
            takes = "; ".join(f"{n} takes {', '.join(loss_spec(n).arg_names) or 'nothing'}"
                              for n in settings.losses)
            raise ConfigError(f"sweep={key}=...: {key!r} is not a config key, and no compared "
                              f"loss takes it ({takes})")


def _parse_own(key: str, raw: str, fixed: set[str]) -> typing.Any:
    if key == "tune_keys":
        return tuning.parse_tune_keys(raw, fixed)
    if key == "sweep":
        return _parse_sweep(raw, fixed)
    if key in ("tune", "tune_epochs"):
        low = 0 if key == "tune" else 1
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if value < low:
            raise ConfigError(f"{key}={raw!r} is not valid; valid: an integer >= {low}")
        return value
    if key == "losses":
        names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
        if not names:
            raise ConfigError(f"losses={raw!r} names no loss; valid: "
                              f"{', '.join(catalog().names())} (comma-separated)")
        for name in names:
            loss_spec(name)  # ConfigError naming the valid losses
        return names
    if key == "seeds":
        try:
            seeds = int(raw)
        except ValueError:
            seeds = 0
        if seeds < 1:
            raise ConfigError(f"seeds={raw!r} is not valid; valid: an integer >= 1")
        return seeds
    if key == "experiment":
        return raw or None
    if key == "dataset":
        return raw
    # epochs / imbalance / landscape: parsed and range-checked as the Config fields they set.
    config = parse_overrides([f"{key}={raw}"])
    return getattr(config, key)


def _parse_sweep(raw: str, fixed: set[str]) -> tuple[str, tuple[str, ...]]:
    """"l2=0,1e-4" → ("l2", ("0", "1e-4")); the values are checked per loss by `variants`."""
    key, sep, values = raw.partition("=")
    key = key.strip().replace("-", "_").removeprefix("loss.")
    raws = tuple(v.strip() for v in values.split(",") if v.strip())
    if not sep or not key or not raws:
        raise ConfigError(f"sweep={raw!r} is not valid; valid: key=v1,v2,... (e.g. "
                          "sweep=l2=0,1e-4,1e-3)")
    if key in SWEEP_REFUSED:
        raise ConfigError(f"sweep={raw!r}: {key} cannot be swept; sweep any other config key "
                          "or loss argument")
    if key in fixed or f"loss.{key}" in fixed:
        raise ConfigError(f"{key} is both set ({key}=...) and swept (sweep=); drop one")
    return key, raws


def _split_shared(settings: CompareSettings) -> tuple[list[str], dict[str, str]]:
    """The shared overrides as (config key=value args, {loss argument: raw value})."""
    fields_ = set(field_names())
    config_args = [f"{k}={v}" for k, v in settings.overrides if k in fields_]
    loss_args = {k.removeprefix("loss."): v for k, v in settings.overrides if k not in fields_}
    return config_args, loss_args


def _check_shared_loss_args(settings: CompareSettings) -> None:
    _, loss_args = _split_shared(settings)
    for key in loss_args:
        if not any(key in loss_spec(name).arg_names for name in settings.losses):
            takes = "; ".join(f"{n} takes {', '.join(loss_spec(n).arg_names) or 'nothing'}"
                              for n in settings.losses)
            known = [*field_names(), *COMPARE_KEYS,
                     *(a for n in settings.losses for a in loss_spec(n).arg_names)]
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown key {key!r}{hint}: not a config key, and no compared "
                              f"loss takes it ({takes})")


def child_configs(settings: CompareSettings) -> list[tuple[str, Config]]:
    """(variant, Config) for every run, in training order: variant-major, seeds 0..n-1."""
    config_args, loss_args = _split_shared(settings)
    runs = []
    for variant in variants(settings):
        spec = loss_spec(variant.loss)
        own_args = [f"{k}={v}" for k, v in loss_args.items() if k in spec.arg_names]
        base = parse_overrides([f"{k}={v}" for k, v in TASK_SETTINGS[spec.task].items()])
        base = parse_overrides([*config_args, f"loss={variant.loss}", *own_args], base)
        base = base.replace(
            dataset=settings.dataset,
            epochs=settings.epochs,
            imbalance=settings.resolved_imbalance() if spec.task == "classification" else 1.0,
            landscape=settings.landscape,
            experiment=settings.experiment_name(),
        )
        if variant.sweep:  # last: it may set epochs, imbalance, ... too
            base = tuning.apply_params(base, dict([variant.sweep]))
        for seed in range(settings.seeds):
            runs.append((variant.name, base.replace(
                seed=seed, run_name=f"{short_name(variant.name)}-seed{seed}")))
    return runs


def tuned_description(settings: CompareSettings) -> str:
    """"10 trials per loss on val/balanced_accuracy" (one objective per task present)."""
    tasks = list(dict.fromkeys(loss_spec(n).task for n in settings.losses))
    on = ", ".join(f"{SELECTION_METRIC[t]} ({t})" for t in tasks) if len(tasks) > 1 else \
        SELECTION_METRIC[tasks[0]]
    return f"{settings.tune} trials per loss on {on}"


def short_name(variant: str) -> str:
    """A run-name-friendly variant name ("pkg.mod:MyLoss" → "MyLoss")."""
    return variant.rsplit(":", 1)[-1]


OWN_KEYS_HELP = [
    ("dataset", "str", "digits", "the dataset every run trains on"),
    ("seeds", "int", 3, "seeds per loss (seed s: the same split and initial weights for all)"),
    ("losses", "str", "the registry's compare variants", "comma-separated registry names "
     "or module:Class paths"),
    ("epochs", "int", Config.epochs, "epochs per run"),
    ("imbalance", "float", "10 on digits, else 100", "long-tail ratio of classification runs"),
    ("landscape", "bool", False, "loss landscape of every run, side by side in the report"),
    ("experiment", "str", "compare-<dataset>", "MLflow experiment"),
    ("tune", "int", 0, "Optuna trials per loss before its seeds train (0 = defaults, untuned)"),
    ("tune_epochs", "int", "epochs", "epochs per tuning trial"),
    ("tune_keys", "str", "none", "shared settings tuned too (learning_rate, l2)"),
    ("sweep", "str", "none", "key=v1,v2,...: one variant per value of a config key or loss "
     "argument"),
]
