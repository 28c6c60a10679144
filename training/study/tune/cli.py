"""`python -m training.tune key=value ...`: the help text (every key and every loss's search
space, without TensorFlow) and `main`, through the commands' one runner (`training.cli`)."""

from __future__ import annotations

import sys

from training.cli import run_cli
from training.config import Config
from training.help import config_lines, keys_help, loss_arg_lines
from training.keyvalue import pairs
from training.loss_catalog import catalog, import_plugins
from training.study.tune.driver import StudyResult, run_study
from training.study.tune.settings import (
    REFUSED,
    SHARED_RANGES,
    TUNE_KEYS,
    TuneSettings,
    describe_range,
    parse_settings,
)
from training.study.tune.workers import launch

USAGE = ("usage: python -m training.tune loss=NAME trials=N [key=value ...]   "
         "(make tune LOSS=focal TRIALS=20 ARGS=\"epochs=5\")")


def tune_help(argv: list[str]) -> str:
    given = dict(pairs(argv))
    import_plugins(given.get("plugins"))
    spaces = []
    for spec in catalog().specs():
        space = spec.search_space()
        shown = "; ".join(f"{k} {describe_range(r)}" for k, r in space.items())
        spaces.append(f"  {spec.name:<22} {shown or '(nothing to tune: use tune_keys=)'}")
    shared = [f"  {k:<22} {describe_range(r)}" for k, r in SHARED_RANGES.items()]
    return "\n".join([
        keys_help(USAGE, TUNE_KEYS),
        "",
        "Shared settings tune_keys= can name (tuned only when named):",
        *shared,
        "",
        "Config keys, the same for every trial (run_name and resume are set per trial):",
        *config_lines(skip=REFUSED),
        "",
        "Search spaces (registry entries; a loss argument given on the line is fixed):",
        *spaces,
        "",
        *loss_arg_lines(given.get("loss") or Config.loss),
        "",
        "Storage: OPTUNA_STORAGE=postgresql://... | sqlite:///... | a journal file path; "
        "default: optuna.journal beside the MLflow store.",
        "Exit codes: 0 done, 1 trials or workers failed, 2 bad input (nothing started), "
        "130/143 interrupted (the running trial is FAIL; re-run to continue).",
    ])


def _show(settings: TuneSettings) -> str:
    space = ", ".join(f"{k} {describe_range(r)}" for k, r in settings.search_space().items())
    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    return (f"study {settings.study_name()!r}: {settings.trials} trials of "
            f"{settings.config.loss} on {settings.config.dataset}, {settings.config.epochs} "
            f"epochs each, {settings.objective} ({settings.direction}), pruner "
            f"{settings.pruner}{workers}; space: {space}")


def tune(settings: TuneSettings) -> StudyResult:
    """`make tune`: this process as the one worker, or `workers` local workers."""
    result = launch(settings) if settings.workers > 1 else run_study(settings)
    print(result.describe(settings), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    return run_cli(tune, sys.argv[1:] if argv is None else argv, resolve=parse_settings,
                   help_text=tune_help, show=_show)
