"""`make compare`: every loss × every seed on one dataset, under one MLflow parent run.

    python -m training.compare dataset=digits seeds=3 losses=ce,focal epochs=15
    make compare DATASET=digits SEEDS=3 LOSSES=ce,focal

Keys: the compare's own (`COMPARE_KEYS`: dataset, seeds, losses, epochs, imbalance, landscape,
experiment) plus any `Config` key, which is applied to every run alike (`learning_rate=1e-3`).
The keys a variant or a seed sets (`RESERVED`) are refused.

Fair by construction: within a task every run gets the same data split (per seed), model,
optimiser, schedule, epochs and batch shape; a variant changes only the loss and its own
hyperparameters (`VARIANTS`). All of it is in each child's params.

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

from training.config import TASKS, Config, ConfigError, parse_overrides

# variant name (what `losses=` lists) -> the Config fields it sets. Nothing else may differ.
VARIANTS: dict[str, dict[str, str]] = {
    "ce": {"loss": "ce"},
    "balanced_ce": {"loss": "balanced_ce"},
    "focal": {"loss": "focal"},
    "triplet": {"loss": "triplet", "mining": "semi-hard"},
    "triplet_hard": {"loss": "triplet", "mining": "hard"},
    "contrastive": {"loss": "contrastive"},
}

# Per-task settings shared by every variant of the task (a user's Config key overrides them,
# still for all alike). Retrieval: P=4 classes × K=16 images = 64, the classification batch
# size; P=4 fits the 5 training classes of any 10-class dataset (config's K=4 would need P=16).
TASK_SETTINGS: dict[str, dict[str, typing.Any]] = {
    "classification": {"batch_size": 64},
    "retrieval": {"batch_size": 64, "samples_per_class": 16},
}

DEFAULT_IMBALANCE = {"digits": 10.0}  # every other dataset: FALLBACK_IMBALANCE
FALLBACK_IMBALANCE = 100.0
RESERVED = ("loss", "mining", "seed", "run_name", "resume")  # set per run by the compare
COMPARE_TAG = "losslab.compare"  # set to "true" on parent runs; `make report` looks for it


@dataclass(frozen=True)
class CompareSettings:
    """What one compare trains. `overrides` are Config keys applied to every run."""

    dataset: str = "digits"
    seeds: int = 3
    losses: tuple[str, ...] = tuple(VARIANTS)
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
    shared: list[str] = []
    for arg in argv:
        key, sep, raw = arg.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {arg!r}; valid keys: "
                              f"{', '.join(COMPARE_KEYS)} or any config key")
        if key in RESERVED:
            raise ConfigError(f"{key} is set per run by the compare; use losses= "
                              f"({', '.join(VARIANTS)}) and seeds= instead")
        if key in COMPARE_KEYS:
            own[key] = _parse_own(key, raw.strip())
        else:
            shared.append(f"{key}={raw.strip()}")
    parse_overrides(shared)  # validates keys and values now, before anything runs
    settings = CompareSettings(**own, overrides=tuple(tuple(a.split("=", 1)) for a in shared))
    child_configs(settings)  # every child Config validates (e.g. P×K vs batch_size)
    return settings


def _parse_own(key: str, raw: str) -> typing.Any:
    if key == "losses":
        names = tuple(n.strip() for n in raw.split(",") if n.strip())
        unknown = [n for n in names if n not in VARIANTS]
        if unknown or not names:
            raise ConfigError(f"losses={raw!r}: unknown loss {', '.join(unknown) or '(none)'}; "
                              f"valid: {', '.join(VARIANTS)} (comma-separated)")
        return tuple(dict.fromkeys(names))  # keep order, drop repeats
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


def child_configs(settings: CompareSettings) -> list[tuple[str, Config]]:
    """(variant, Config) for every run, in training order: variant-major, seeds 0..n-1."""
    shared = dict(settings.overrides)
    runs = []
    for variant in settings.losses:
        task = TASKS[VARIANTS[variant]["loss"]]
        base = parse_overrides([f"{k}={v}" for k, v in TASK_SETTINGS[task].items()])
        base = parse_overrides([f"{k}={v}" for k, v in shared.items()], base)
        for seed in range(settings.seeds):
            runs.append((variant, base.replace(
                **VARIANTS[variant],
                dataset=settings.dataset,
                epochs=settings.epochs,
                imbalance=settings.resolved_imbalance() if task == "classification" else 1.0,
                landscape=settings.landscape,
                seed=seed,
                experiment=settings.experiment_name(),
                run_name=f"{variant}-seed{seed}",
            )))
    return runs


def variant_of(params: dict[str, str]) -> str | None:
    """The variant whose fields all match a run's logged params; None if none does."""
    for name, fields in VARIANTS.items():
        if all(params.get(k) == v for k, v in fields.items()):
            return name
    return None


class CompareIncomplete(RuntimeError):
    """Some child runs failed; the report covers the others."""


def compare(settings: CompareSettings):
    """Train every (variant, seed), then build, print and log the report. → `Report`."""
    import keras  # noqa: PLC0415 (heavy; the parser above stays import-light)
    import mlflow  # noqa: PLC0415

    from training import tracking  # noqa: PLC0415
    from training.report import build_report, publish  # noqa: PLC0415 (imports variant_of)
    from training.train import train  # noqa: PLC0415

    runs = child_configs(settings)
    parent_config = Config(dataset=settings.dataset, experiment=settings.experiment_name(),
                           run_name=f"compare-{','.join(settings.losses)}")
    failures: list[tuple[str, int, BaseException]] = []
    with tracking.open_run(parent_config) as parent:
        parent_id = parent.info.run_id
        mlflow.log_params({k: "none" if v is None else v for k, v in settings.to_dict().items()})
        mlflow.set_tags({COMPARE_TAG: "true", "dataset": settings.dataset,
                         "losses": ",".join(settings.losses)})
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


def main(argv: list[str] | None = None) -> int:
    from training.cli import run_cli  # noqa: PLC0415

    return run_cli(compare, sys.argv[1:] if argv is None else argv, resolve=parse_settings)


if __name__ == "__main__":
    sys.exit(main())
