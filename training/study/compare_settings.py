"""What a compare trains (`training.study.compare`): its settings (parsed and checked by
`compare_parse` before TensorFlow or MLflow is imported), its variants (a loss, a preset, a
swept value) and every child run's Config."""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass

from training import metric_catalog
from training.config import SELECTION_METRIC, Config, ConfigError, field_names, parse_overrides
from training.loss_catalog import catalog, loss_spec
from training.study import tune as tuning

DEFAULT_IMBALANCE = {"digits": 10.0}  # every other dataset: FALLBACK_IMBALANCE
FALLBACK_IMBALANCE = 100.0
RESERVED = ("loss", "seed", "run_name")  # set per run by the compare
SWEEP_REFUSED = (*RESERVED, "resume", "dataset", "experiment", "plugins", "loss_args")
ARGV_TAG = "losslab.argv"  # the compare's key=value words (JSON), on its parent: RESUME=


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
    datasets: tuple[str, ...] = ()  # several datasets in one grid; () = (dataset,)
    workers: str = "1"  # local worker processes: "N" or "gpus" (not part of the grid)
    resume: str | None = None  # the parent run id of the compare to continue
    argv: tuple[str, ...] = ()  # the words it was parsed from (RESUME= re-reads them)

    def dataset_list(self) -> tuple[str, ...]:
        return self.datasets or (self.dataset,)

    def for_dataset(self, dataset: str) -> CompareSettings:
        """The same compare on one of its datasets (its split and long-tail default)."""
        return dataclasses.replace(self, dataset=dataset, datasets=())

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

    def datasets_label(self) -> str:
        """"digits", or "digits+idx-mnist-t10k" for a grid over several datasets."""
        return "+".join(self.for_dataset(d).dataset_label() for d in self.dataset_list())

    def experiment_name(self) -> str:
        return self.experiment or "compare-" + self.datasets_label()

    def parent_name(self) -> str:
        """The parent run's name, short enough for the UI's run list: "compare-digits-3 losses"
        (a sweep: "... variants"); the full list is its `losslab.losses` tag."""
        n = len(variants(self))
        noun = ("variant" if self.sweep else "loss") + ("" if n == 1 else
                                                        "s" if self.sweep else "es")
        return f"compare-{self.datasets_label()}-{n} {noun}"

    def to_dict(self) -> dict[str, typing.Any]:
        """Flat, loggable: the parent run's params (losses as "ce,focal")."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in ("datasets", "workers", "resume", "argv")}
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
        if len(self.dataset_list()) > 1:
            values["dataset"] = values["datasets"] = ",".join(self.dataset_list())
            values["imbalance"] = ",".join(
                f"{self.for_dataset(d).resolved_imbalance():g}" for d in self.dataset_list())
        return values


COMPARE_KEYS = ("dataset", "datasets", "seeds", "losses", "epochs", "imbalance", "landscape",
                "experiment", "tune", "tune_epochs", "tune_keys", "sweep", "workers", "resume")


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
    if isinstance(value, (tuple, list)):  # no commas: the parent's `variants` is comma-joined
        return " ".join(sweep_label(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _split_shared(settings: CompareSettings) -> tuple[list[str], dict[str, str]]:
    """The shared overrides as (config key=value args, {loss argument: raw value})."""
    fields_ = set(field_names())
    config_args = [f"{k}={v}" for k, v in settings.overrides if k in fields_]
    loss_args = {k.removeprefix("loss."): v for k, v in settings.overrides if k not in fields_}
    return config_args, loss_args


def child_configs(settings: CompareSettings) -> list[tuple[str, Config]]:
    """(variant, Config) for every run, in training order: variant-major, seeds 0..n-1."""
    config_args, loss_args = _split_shared(settings)
    if len(settings.dataset_list()) > 1:
        return [run for d in settings.dataset_list()
                for run in child_configs(settings.for_dataset(d))]
    runs = []
    for variant in variants(settings):
        spec = loss_spec(variant.loss)
        own_args = [f"{k}={v}" for k, v in loss_args.items() if k in spec.arg_names]
        # The task's settings shared by every variant (metric_catalog: a user's Config key
        # overrides them, still for all alike).
        defaults = metric_catalog.task_defaults(spec.task)
        base = parse_overrides([f"{k}={v}" for k, v in defaults.items()])
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
