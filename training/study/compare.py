"""`make compare`: every loss × every seed on one dataset, under one MLflow parent run.

    python -m training.compare dataset=digits seeds=3 losses=ce,focal epochs=15
    make compare DATASET=digits SEEDS=3 LOSSES=ce,focal

Keys: the compare's own (`COMPARE_KEYS`: dataset, seeds, losses, epochs, imbalance, landscape,
experiment) plus any `Config` key, which is applied to every run alike (`learning_rate=1e-3`),
and any loss argument, applied to every compared loss that takes it (`margin=0.3`). The keys a
variant or a seed sets (`RESERVED`) are refused.

Variants are registry names (`losses/catalog.py`): a loss, or a named preset of one
(`triplet_hard`), or a user's "module:Class" loss. The default list is every entry marked
`in_compare`. Fair by construction: within a task every run gets the same data split (per
seed), model trunk, optimiser, schedule, epochs and batch shape; a variant changes only the
loss, its own hyperparameters and the head its loss takes. All of it is in each child's params.

- Classification variants train on the long-tailed split: `imbalance` defaults to
  `DEFAULT_IMBALANCE[dataset]`, else 100 (IR=100 is the CIFAR-10-LT / MNIST-LT benchmark;
  digits keeps ~130 training images per class, so IR=100 would leave its tail class one).
- Retrieval variants train on held-out classes with imbalance 1 (the test classes are unseen,
  a long tail would only starve the P×K sampler).

MLflow: a parent run (experiment `compare-<dataset>` unless `experiment=`) holds one child
run per (variant, seed) — normal `train()` runs, nested under it. After the trainings the
report is built by reading the store back (`training.report`, the same code as
`make report`), printed, and logged to the parent.

A failing child is recorded and the compare goes on with the others: its run (if it was
created) ends FAILED, the report counts only finished runs (`n` per loss says so) and lists
the failures, the parent ends FAILED (exit 1). If no child finishes, the first error is
re-raised (bad data → exit 2). Ctrl-C / SIGTERM stop at once (parent KILLED); `make report`
still reports whatever finished.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import typing
from dataclasses import dataclass

from training.cli import pairs, run_cli
from training.config import Config, ConfigError, field_names, parse_overrides
from training.help import compare_help
from training.loss_catalog import catalog, import_plugins, loss_spec
from training.tags import COMPARE_TAG

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

    def resolved_imbalance(self) -> float:
        if self.imbalance is not None:
            return self.imbalance
        return DEFAULT_IMBALANCE.get(self.dataset, FALLBACK_IMBALANCE)

    def experiment_name(self) -> str:
        if self.experiment:
            return self.experiment
        dataset = self.dataset
        if dataset.startswith("idx:"):
            dataset = "idx-" + dataset[4:].rstrip("/").rsplit("/", 1)[-1]
        return "compare-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset)

    def to_dict(self) -> dict[str, typing.Any]:
        """Flat, loggable: the parent run's params (losses as "ce,focal")."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["losses"] = ",".join(self.losses)
        values["imbalance"] = self.resolved_imbalance()
        values["experiment"] = self.experiment_name()
        values.update(dict(values.pop("overrides")))
        return values


COMPARE_KEYS = ("dataset", "seeds", "losses", "epochs", "imbalance", "landscape", "experiment")


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
    own = {key: _parse_own(key, raw) for key, raw in own.items()}
    settings = CompareSettings(**own, overrides=tuple(shared))
    _check_shared_loss_args(settings)
    child_configs(settings)  # every child Config validates (e.g. P×K vs batch_size)
    return settings


def _parse_own(key: str, raw: str) -> typing.Any:
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
            raise ConfigError(f"unknown key {key!r}: not a config key, and no compared loss "
                              f"takes it ({takes})")


def child_configs(settings: CompareSettings) -> list[tuple[str, Config]]:
    """(variant, Config) for every run, in training order: variant-major, seeds 0..n-1."""
    config_args, loss_args = _split_shared(settings)
    runs = []
    for variant in settings.losses:
        spec = loss_spec(variant)
        own_args = [f"{k}={v}" for k, v in loss_args.items() if k in spec.arg_names]
        base = parse_overrides([f"{k}={v}" for k, v in TASK_SETTINGS[spec.task].items()])
        base = parse_overrides([*config_args, f"loss={variant}", *own_args], base)
        for seed in range(settings.seeds):
            runs.append((variant, base.replace(
                dataset=settings.dataset,
                epochs=settings.epochs,
                imbalance=settings.resolved_imbalance() if spec.task == "classification" else 1.0,
                landscape=settings.landscape,
                seed=seed,
                experiment=settings.experiment_name(),
                run_name=f"{_short(variant)}-seed{seed}",
            )))
    return runs


def _short(variant: str) -> str:
    """A run-name-friendly variant name ("pkg.mod:MyLoss" → "MyLoss")."""
    return variant.rsplit(":", 1)[-1]


class CompareIncomplete(RuntimeError):
    """Some child runs failed; the report covers the others."""


def compare(settings: CompareSettings):
    """Train every (variant, seed), then build, print and log the report. → `Report`."""
    import keras  # noqa: PLC0415 (heavy; the parser above stays import-light)
    import mlflow  # noqa: PLC0415

    from training.run import tracking  # noqa: PLC0415
    from training.run.trainer import train  # noqa: PLC0415
    from training.study.report import build_report, publish  # noqa: PLC0415

    runs = child_configs(settings)
    parent_config = Config(dataset=settings.dataset, experiment=settings.experiment_name(),
                           run_name=f"compare-{','.join(settings.losses)}")
    failures: list[tuple[str, int, BaseException]] = []
    with tracking.open_run(parent_config) as parent:
        parent_id = parent.info.run_id
        mlflow.log_params({k: "none" if v is None else v for k, v in settings.to_dict().items()})
        mlflow.set_tags({COMPARE_TAG: "true", "losslab.dataset": settings.dataset,
                         "losslab.losses": ",".join(settings.losses)})
        for index, (variant, config) in enumerate(runs, start=1):
            print(f"\n=== [{index}/{len(runs)}] {variant}, seed {config.seed} ===", flush=True)
            keras.utils.clear_session()  # drop the previous model's graph and memory
            try:
                train(config, parent_run_id=parent_id)
            except Exception as exc:  # noqa: BLE001 (recorded, reported, the others go on)
                print(f"run {variant} seed {config.seed} failed: {type(exc).__name__}: {exc}",
                      file=sys.stderr, flush=True)
                failures.append((variant, config.seed, exc))
        if len(failures) == len(runs):
            raise failures[0][2]
        report = build_report(mlflow.MlflowClient(), parent_id)
        publish(mlflow.MlflowClient(), report)
        print("\n" + report.markdown)
        print(f"parent run {parent_id} in experiment {settings.experiment_name()!r}")
        if failures:
            listed = "; ".join(f"{v} seed {s}: {type(e).__name__}: {e}" for v, s, e in failures)
            raise CompareIncomplete(f"{len(failures)} of {len(runs)} runs failed ({listed})")
    return report


OWN_KEYS_HELP = [
    ("dataset", "str", "digits", "the dataset every run trains on"),
    ("seeds", "int", 3, "seeds per loss (seed s: the same split and initial weights for all)"),
    ("losses", "str", "the registry's compare variants", "comma-separated registry names "
     "or module:Class paths"),
    ("epochs", "int", Config.epochs, "epochs per run"),
    ("imbalance", "float", "10 on digits, else 100", "long-tail ratio of classification runs"),
    ("landscape", "bool", False, "loss landscape of every run, side by side in the report"),
    ("experiment", "str", "compare-<dataset>", "MLflow experiment"),
]


def compare_help_text(argv: list[str]) -> str:
    return compare_help(argv, OWN_KEYS_HELP)


def main(argv: list[str] | None = None) -> int:
    return run_cli(compare, sys.argv[1:] if argv is None else argv, resolve=parse_settings,
                   help_text=compare_help_text,
                   show=lambda s: f"compare on {s.dataset}: {', '.join(s.losses)} × {s.seeds} "
                                  f"seeds, {s.epochs} epochs")


if __name__ == "__main__":
    sys.exit(main())
