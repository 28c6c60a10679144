"""Parsing a compare's key=value words (`training.study.compare`), before TensorFlow or MLflow
is imported: each key checked, with a message naming the valid choices; `resume=<parent>` re-reads
the parent's own words."""

from __future__ import annotations

import dataclasses
import difflib
import typing

from training.cli import pairs
from training.config import Config, ConfigError, field_names, parse_overrides
from training.loss_catalog import catalog, import_plugins, loss_spec
from training.study import grid_settings
from training.study import tune as tuning
from training.study.compare_settings import (
    ARGV_TAG,
    COMPARE_KEYS,
    RESERVED,
    SWEEP_REFUSED,
    CompareSettings,
    _split_shared,
    child_configs,
    default_variants,
)


def parse_settings(argv: typing.Iterable[str]) -> CompareSettings:
    """`["losses=ce,focal", "seeds=2", "learning_rate=1e-3"]` → CompareSettings.

    Raises ConfigError naming the bad key or value and the valid choices.
    """
    argv = list(argv)
    given = dict(pairs(argv, [*COMPARE_KEYS, "any config key or loss argument"]))
    if given.get("resume"):
        return _resumed(given["resume"], given.get("workers", "1"), argv)
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
    if "dataset" in own and "datasets" in own:
        raise ConfigError("dataset= and datasets= do not combine; list every dataset in "
                          "datasets= (e.g. datasets=digits,idx:PATH)")
    kept = tuple(w for w in argv if pairs([w], COMPARE_KEYS)[0][0] not in ("workers", "resume"))
    settings = CompareSettings(**own, overrides=tuple(shared), argv=kept)
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
    tuning.check_storage()  # the grid's cells live there; a tracking server needs OPTUNA_STORAGE
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
    if key == "datasets":
        return grid_settings.parse_datasets(raw)
    if key == "workers":
        return grid_settings.parse_workers(raw)
    # epochs / imbalance / landscape: parsed and range-checked as the Config fields they set.
    config = parse_overrides([f"{key}={raw}"])
    return getattr(config, key)


def _parse_sweep(raw: str, fixed: set[str]) -> tuple[str, tuple[str, ...]]:
    """"l2=0,1e-4" → ("l2", ("0", "1e-4")); values that hold commas themselves (a tuple such as
    pinball's quantiles) are separated by ";": "quantiles=0.1,0.9;0.05,0.95". The values are
    checked per loss by `variants`."""
    key, sep, values = raw.partition("=")
    key = key.strip().replace("-", "_").removeprefix("loss.")
    raws = tuple(v.strip() for v in values.split(";" if ";" in values else ",") if v.strip())
    if not sep or not key or not raws:
        raise ConfigError(f"sweep={raw!r} is not valid; valid: key=v1,v2,... or, for values "
                          "with commas, key=a,b;c,d (e.g. sweep=l2=0,1e-4,1e-3)")
    if key in SWEEP_REFUSED:
        raise ConfigError(f"sweep={raw!r}: {key} cannot be swept; sweep any other config key "
                          "or loss argument")
    if key in fixed or f"loss.{key}" in fixed:
        raise ConfigError(f"{key} is both set ({key}=...) and swept (sweep=); drop one")
    return key, raws


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


OWN_KEYS_HELP = [
    ("dataset", "str", "digits", "the dataset every run trains on"),
    ("datasets", "str", "dataset", "several datasets in one grid: digits,idx:PATH,..."),
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
    ("workers", "str", 1, "local worker processes filling the grid: N, or gpus (one per GPU)"),
    ("resume", "str", "none", "a compare's parent run id: run its cells not FINISHED"),
]


def _resumed(run_id: str, workers: str, argv: list[str]) -> CompareSettings:
    """`resume=<parent id>` (with `workers=` at most): a placeholder that `resolve_resume`
    fills from the parent run when the compare starts (the parser reads no store)."""
    extra = [w for w in argv if pairs([w], COMPARE_KEYS)[0][0] not in ("workers", "resume")]
    if extra:
        raise ConfigError(f"resume={run_id} takes the compare's settings from its parent run; "
                          f"drop {' '.join(extra)} (only workers= may be given with it)")
    return CompareSettings(resume=run_id, workers=grid_settings.parse_workers(workers))


def resolve_resume(settings: CompareSettings) -> CompareSettings:
    """The placeholder of `resume=<parent>` → the parent's own settings (its words again),
    with this line's workers; other settings are returned as they are."""
    if not settings.resume or settings.argv:
        return settings
    words = grid_settings.parent_argv(settings.resume, ARGV_TAG)
    parsed = parse_settings([*words, f"workers={settings.workers}"])
    return dataclasses.replace(parsed, resume=settings.resume)
