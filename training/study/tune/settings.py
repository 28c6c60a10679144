"""A study's settings: the `key=value` line → TuneSettings (the trials' base config, the
objective, the pruner), the search space, and one trial's sampled config."""

from __future__ import annotations

import dataclasses
import json
import re
import typing

import optuna

from training import metric_catalog
from training.config import SELECTION_METRIC, Config, field_names, parse_overrides
from training.errors import ConfigError
from training.keyvalue import Key, pairs, parse_keys
from training.loss_catalog import catalog
from training.study.tune.storage import check_storage

PRUNERS = ("median", "none")
# Built-in ranges of the shared settings `tune_keys=` may name; only those named are tuned.
SHARED_RANGES: dict[str, tuple] = {
    "learning_rate": ("log", 1e-4, 1e-2),
    "l2": ("log", 1e-6, 1e-2),
}
# MedianPruner: 3 trials finish before any is pruned, none is pruned before epoch 2 (epoch
# 1 ranks hyperparameters by how fast they start, not where they end).
PRUNER_STARTUP_TRIALS = 3
PRUNER_WARMUP_EPOCHS = 2
REFUSED = ("resume", "run_name")  # set per trial

TUNE_KEYS = (
    Key("trials", int, 0, "the study's total number of trials, shared by all its workers",
        required=True),
    Key("objective", str, "", "a val/ metric at the last epoch (default: " + ", ".join(
        f"{metric} for {task}" for task, metric in SELECTION_METRIC.items()) + ")"),
    Key("pruner", str, "median", "median (Optuna's MedianPruner on the per-epoch objective) "
        "| none"),
    Key("study", str, "", "study name (default: <loss>-<dataset>-<objective>); the same name "
        "continues the study"),
    Key("workers", int, 1, "local worker processes on the study (one GPU each when visible)"),
    Key("tune_keys", str, "", "shared settings to tune too, comma-separated (learning_rate, "
        "l2; ranges below)"),
)


def describe_range(search: tuple) -> str:
    """("log", 1e-4, 1e-2) → "log 0.0001..0.01"; ("choice", (a, b)) → "one of a, b"."""
    kind = search[0]
    if kind == "choice":
        return "one of " + ", ".join("none" if v is None else str(v) for v in search[1])
    return f"{kind} {search[1]:g}..{search[2]:g}"


@dataclasses.dataclass(frozen=True)
class TuneSettings:
    """One study: the base config every trial starts from and how the study runs.

    Attributes:
        config: the trials' base config (loss, dataset, epochs, shared settings, seed).
        trials: the study's total over all workers.
        objective: "val/<metric>".
        study: the Optuna study name; None = `<loss>-<dataset>-<objective>`.
        tune_keys: shared `Config` keys tuned besides the loss's arguments.
        argv: the command's words (workers re-run them).
    """

    config: Config
    trials: int
    objective: str
    pruner: str = "median"
    study: str | None = None
    workers: int = 1
    tune_keys: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()

    @property
    def metric(self) -> str:
        return self.objective.removeprefix("val/")

    @property
    def direction(self) -> str:
        return metric_catalog.direction(self.metric)

    def study_name(self) -> str:
        if self.study:
            return self.study
        dataset = self.config.dataset
        if dataset.startswith("idx:"):
            dataset = "idx-" + dataset[4:].rstrip("/").rsplit("/", 1)[-1]
        return f"{self.config.loss}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', dataset)}-{self.objective}"

    def search_space(self) -> dict[str, tuple]:
        return search_space(self.config, self.tune_keys)

    def fingerprint(self) -> str:
        """What must not change when a study is continued: the trials' settings (tuned keys
        and per-run names left out), the search space, the objective and the pruner."""
        space = self.search_space()
        values = {k: v for k, v in self.config.to_dict().items()
                  if k not in space and k not in ("run_name", "checkpoint_dir", "resume",
                                                  "system_metrics")}
        return json.dumps({"config": values, "space": {k: list(v) for k, v in space.items()},
                           "objective": self.objective, "pruner": self.pruner},
                          sort_keys=True, default=str)

    def optuna_pruner(self) -> optuna.pruners.BasePruner:
        """MedianPruner with PRUNER_STARTUP_TRIALS / PRUNER_WARMUP_EPOCHS, or none."""
        if self.pruner == "none":
            return optuna.pruners.NopPruner()
        return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS,
                                           n_warmup_steps=PRUNER_WARMUP_EPOCHS)


def search_space(config: Config, tune_keys: typing.Iterable[str] = ()) -> dict[str, tuple]:
    """name → range: the loss's tuned arguments not given on the line, then `tune_keys`."""
    space = {k: r for k, r in config.spec.search_space().items() if k not in config.loss_args}
    space.update({k: SHARED_RANGES[k] for k in tune_keys})
    return space


def parse_tune_keys(raw: str, fixed: typing.Iterable[str] = ()) -> tuple[str, ...]:
    """"learning_rate,l2" → ("learning_rate", "l2"); each must have a built-in range and must
    not also be set on the line (`fixed`)."""
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    valid = ", ".join(f"{k} ({describe_range(r)})" for k, r in SHARED_RANGES.items())
    for name in names:
        if name not in SHARED_RANGES:
            raise ConfigError(f"tune_keys: {name!r} has no built-in range; valid: {valid}")
        if name in fixed:
            raise ConfigError(f"{name} is both set ({name}=...) and tuned (tune_keys=); drop one")
    return names


def check_objective(objective: str, task: str) -> str:
    """The objective as "val/<metric>"; ConfigError for test/ or any non-val metric, or one
    the catalogue does not allow as an objective of `task` (`metric_catalog.objectives`; the
    shot-group accuracies exist only for the groups the training split has)."""
    allowed = metric_catalog.objectives(task)
    valid = ", ".join(f"val/{m}" for m in allowed)
    if objective.startswith("test/"):
        raise ConfigError(f"objective={objective!r}: trials never read the test split; "
                          f"choose a val/ metric: {valid}")
    if objective.removeprefix("val/") not in allowed or not objective.startswith("val/"):
        raise ConfigError(f"objective={objective!r} is not a val/ metric of {task}; "
                          f"valid: {valid}")
    return objective


def nothing_to_tune(config: Config) -> str:
    """The message for a loss without a search space (and no tune_keys)."""
    given = [k for k in config.spec.search_space() if k in config.loss_args]
    fixed = f" (given on the line, so fixed: {', '.join(given)})" if given else ""
    tunable = [s.name for s in catalog().specs(config.task) if s.search_space()]
    return (f"{config.loss} has nothing to tune: its registry entry declares no search range"
            f"{fixed}; tune shared settings with tune_keys={','.join(SHARED_RANGES)}, or "
            f"another loss ({', '.join(tunable)})")


def parse_settings(argv: typing.Iterable[str]) -> TuneSettings:
    """`["loss=focal", "trials=20", "epochs=5"]` → TuneSettings. ConfigError (exit 2) naming
    the bad key or value and the valid choices."""
    argv = list(argv)
    own_names = {k.name for k in TUNE_KEYS}
    words = pairs(argv, [*own_names, "any config key or loss argument"])
    own = parse_keys([f"{k}={v}" for k, v in words if k in own_names], TUNE_KEYS)
    rest = [(k, v) for k, v in words if k not in own_names]
    for key, _ in rest:
        if key in REFUSED:
            raise ConfigError(f"{key} is set per trial by the tuner; trials are named "
                              "<loss>-trial<number>")
    try:
        config = parse_overrides([f"{k}={v}" for k, v in rest])
    except ConfigError as exc:
        if str(exc).startswith("unknown config key"):
            raise ConfigError(f"{exc}; tune keys: {', '.join(own_names)}") from None
        raise
    if own["trials"] < 1:
        raise ConfigError(f"trials={own['trials']} is out of range; valid: an integer >= 1")
    if own["workers"] < 1:
        raise ConfigError(f"workers={own['workers']} is out of range; valid: an integer >= 1")
    if own["pruner"] not in PRUNERS:
        raise ConfigError(f"pruner={own['pruner']!r} is not valid; choose one of: "
                          f"{', '.join(PRUNERS)}")
    tune_keys = parse_tune_keys(own["tune_keys"], fixed={k for k, _ in rest})
    objective = check_objective(own["objective"] or SELECTION_METRIC[config.task], config.task)
    if objective == "val/balanced_accuracy_tau_norm" and config.resolved_head() != "dense":
        raise ConfigError(f"objective={objective} needs a dense head (τ-norm rescales its class "
                          f"weights); {config.loss} has a cosine head: choose another objective "
                          "or head=dense")
    settings = TuneSettings(config=config, trials=own["trials"], objective=objective,
                            pruner=own["pruner"], study=own["study"] or None,
                            workers=own["workers"], tune_keys=tune_keys, argv=tuple(argv))
    if not settings.search_space():
        raise ConfigError(nothing_to_tune(config))
    check_storage()
    return settings


# --- a trial's config ------------------------------------------------------------------------


def sample(trial: optuna.Trial, space: dict[str, tuple]) -> dict[str, typing.Any]:
    """One value per range: float, log (log-uniform float), int, choice."""
    values = {}
    for name, search in space.items():
        kind = search[0]
        if kind == "choice":
            values[name] = trial.suggest_categorical(name, list(search[1]))
        elif kind == "int":
            values[name] = trial.suggest_int(name, int(search[1]), int(search[2]))
        elif kind in ("float", "log"):
            values[name] = trial.suggest_float(name, float(search[1]), float(search[2]),
                                               log=kind == "log")
        else:
            raise ValueError(f"search range of {name!r}: kind {kind!r}; valid: float, log, int, "
                             "choice")
    return values


def apply_params(config: Config, params: dict[str, typing.Any]) -> Config:
    """`config` with sampled (or best) values: loss arguments into `loss_args`, shared keys
    set as fields."""
    fields_ = set(field_names())
    loss_args = {k: v for k, v in params.items() if k not in fields_}
    shared = {k: v for k, v in params.items() if k in fields_}
    return config.replace(loss_args={**config.loss_args, **loss_args}, **shared)
