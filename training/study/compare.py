"""`make compare`: every loss × every seed on one dataset, under one MLflow parent run.

    python -m training.compare dataset=digits seeds=3 losses=ce,focal epochs=15
    make compare DATASET=digits SEEDS=3 LOSSES=ce,focal

Keys (parsed in `compare_settings`): the compare's own (`COMPARE_KEYS`: dataset, seeds, losses,
epochs, imbalance, landscape, experiment) plus any `Config` key, which is applied to every run
alike (`learning_rate=1e-3`), and any loss argument, applied to every compared loss that takes
it (`margin=0.3`). The keys a variant or a seed sets (`RESERVED`) are refused.

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

Tuning (`tune=N`, `make compare TUNE=N`): every variant first gets an Optuna study of N
trials (`training.study.tune`) over its registry search space, each trial `tune_epochs`
epochs (default: the compare's `epochs`) with the same shared settings, seed 0 and the
task's selection metric; shared settings are tuned only when named (`tune_keys=l2`). Then its
best config trains over the seeds and is tested once. A loss with nothing to tune trains at
its defaults. The parent records `tuned/<variant>/<param>` params, a `tuned/<variant>/
best_value` metric and the tag `losslab.tuned` ("N trials per loss on <objective>").

Sweeps (`sweep=key=v1,v2,...`, `make compare SWEEP="l2=0,1e-4,1e-3"`): one variant per value
of any Config key or loss argument, for every compared loss that takes it (a loss that
does not runs once, unswept): `ce[l2=0.0001]`, children `ce[l2=0.0001]-seed0` with param
`sweep.l2`. A sweep does not combine with `tune=`.

MLflow: a parent run (experiment `compare-<dataset>` unless `experiment=`) holds one child
run per (variant, seed) — normal `train()` runs, nested under it, tagged
`losslab.variant=<variant>` — and, with `tune=`, one study run per variant (tag
`losslab.study`) holding its trial runs. After the trainings the report is built by reading
the store back (`training.report`, the same code as `make report`), printed, and logged to
the parent.

A failing child is recorded and the compare goes on with the others: its run (if it was
created) ends FAILED, the report counts only finished runs (`n` per loss says so) and lists
the failures, the parent ends FAILED (exit 1). If no child finishes, the first error is
re-raised (bad data → exit 2). Ctrl-C / SIGTERM stop at once (parent KILLED); `make report`
still reports whatever finished.
"""
from __future__ import annotations

import sys

from training.cli import run_cli
from training.config import SELECTION_METRIC, Config
from training.help import compare_help
from training.study import tune as tuning
from training.study.compare_settings import (
    OWN_KEYS_HELP,
    CompareSettings,
    Variant,
    child_configs,
    parse_settings,
    sweep_label,
    tuned_description,
    variants,
)
from training.tags import COMPARE_TAG, TUNED_TAG, VARIANT_TAG


def _tune(settings: CompareSettings, variant: Variant, config: Config, parent_id: str) -> dict:
    """The variant's study (its run a child of the compare's) → its best params, also
    logged on the compare's parent as `tuned/<variant>/<param>`; {} if nothing to tune."""
    import mlflow  # noqa: PLC0415 (heavy; the parser above stays import-light)

    if not tuning.search_space(config, settings.tune_keys):
        mlflow.log_param(f"tuned/{variant.name}", "defaults (no search space)")
        return {}
    objective = SELECTION_METRIC[config.task]
    study = tuning.TuneSettings(
        config=config.replace(epochs=settings.tune_epochs or settings.epochs, run_name=None),
        trials=settings.tune, objective=objective, study=f"compare-{parent_id}-{variant.name}",
        tune_keys=settings.tune_keys)
    print(f"\n=== tuning {variant.name}: {settings.tune} trials, {study.config.epochs} epochs "
          f"each, on {objective} ===", flush=True)
    result = tuning.run_study(study, parent_run_id=parent_id)
    if result.best_params is None:
        raise tuning.TrialsFailing(f"no trial of {variant.name} finished ({result.failed} failed)")
    mlflow.log_params({f"tuned/{variant.name}/{k}": "none" if v is None else v
                       for k, v in result.best_params.items()})
    mlflow.log_metric(f"tuned/{variant.name}/best_value", result.best_value)
    return result.best_params


class CompareIncomplete(RuntimeError):
    """Some child runs failed; the report covers the others."""


def compare(settings: CompareSettings):
    """Train every (variant, seed), then build, print and log the report. → `Report`."""
    # Imported here, not at the top: `python -m training.compare --help` and the parser above
    # must answer without TensorFlow and MLflow (6 s); these run once the settings are valid.
    from training import quiet  # noqa: PLC0415 (importing it imports TensorFlow quietly)

    quiet.import_tensorflow()  # before Keras does, or TensorFlow's start-up lines show
    import keras  # noqa: PLC0415 (heavy; the parser above stays import-light)
    import mlflow  # noqa: PLC0415

    from training.run import checkpoint, tracking  # noqa: PLC0415
    from training.run.trainer import train  # noqa: PLC0415
    from training.study.report import build_report, publish  # noqa: PLC0415

    runs = child_configs(settings)
    checkpoint.check_root(runs[0][1].checkpoint_dir)  # exit 2 before the parent run exists
    parent_config = Config(dataset=settings.dataset, experiment=settings.experiment_name(),
                           run_name=settings.parent_name())
    failures: list[tuple[str, int, BaseException]] = []
    with tracking.open_run(parent_config) as parent:
        parent_id = parent.info.run_id
        mlflow.log_params({k: "none" if v is None else v for k, v in settings.to_dict().items()})
        mlflow.set_tags({COMPARE_TAG: "true", "losslab.dataset": settings.dataset,
                         "losslab.losses": ",".join(settings.losses),
                         "losslab.variants": ",".join(v.name for v in variants(settings))})
        if settings.tune:
            mlflow.set_tag(TUNED_TAG, tuned_description(settings))
        index = 0
        for variant in variants(settings):
            configs = [c for name, c in runs if name == variant.name]
            if settings.tune:
                try:
                    best = _tune(settings, variant, configs[0], parent_id)
                except Exception as exc:  # noqa: BLE001 (its seeds are failures; others go on)
                    print(f"tuning {variant.name} failed: {type(exc).__name__}: {exc}",
                          file=sys.stderr, flush=True)
                    failures += [(variant.name, c.seed, exc) for c in configs]
                    index += len(configs)
                    continue
                configs = [tuning.apply_params(c, best) for c in configs]
            for config in configs:
                index += 1
                print(f"\n=== [{index}/{len(runs)}] {variant.name}, seed {config.seed} ===",
                      flush=True)
                keras.utils.clear_session()  # drop the previous model's graph and memory
                run_id = None
                try:
                    run_id = train(config, parent_run_id=parent_id,
                                   tags={VARIANT_TAG: variant.name})["run_id"]
                except Exception as exc:  # noqa: BLE001 (recorded, reported, the others go on)
                    print(f"run {variant.name} seed {config.seed} failed: "
                          f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                    failures.append((variant.name, config.seed, exc))
                    run_id = getattr(exc, "losslab_run_id", None)
                if variant.sweep and run_id:
                    mlflow.MlflowClient().log_param(run_id, f"sweep.{variant.sweep[0]}",
                                                    sweep_label(variant.sweep[1]))
        if len(failures) == len(runs):
            raise failures[0][2]
        report = build_report(mlflow.MlflowClient(), parent_id)
        publish(mlflow.MlflowClient(), report)
        print("\n" + report.markdown)
        for line in report.warnings:  # again at the end: the table above may scroll them away
            print(f"warning: {line}", file=sys.stderr, flush=True)
        print(f"parent run {parent_id} in experiment {settings.experiment_name()!r}")
        print(f"experiment: {tracking.run_url(experiment_id=parent.info.experiment_id)}")
        print(f"view it: {tracking.run_url(parent)}", flush=True)
        if failures:
            listed = "; ".join(f"{v} seed {s}: {type(e).__name__}: {e}" for v, s, e in failures)
            raise CompareIncomplete(f"{len(failures)} of {len(runs)} runs failed ({listed})")
    return report


def compare_help_text(argv: list[str]) -> str:
    return compare_help(argv, OWN_KEYS_HELP)


def main(argv: list[str] | None = None) -> int:
    return run_cli(compare, sys.argv[1:] if argv is None else argv, resolve=parse_settings,
                   help_text=compare_help_text,
                   show=lambda s: f"compare on {s.dataset}: "
                                  f"{', '.join(v.name for v in variants(s))} × {s.seeds} seeds, "
                                  f"{s.epochs} epochs"
                                  + (f"; tuned: {tuned_description(s)}" if s.tune else ""))


if __name__ == "__main__":
    sys.exit(main())
