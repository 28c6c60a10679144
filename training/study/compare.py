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

import json
import os
import sys

from training.cli import run_cli, signals_default
from training.config import Config
from training.errors import RunKilled
from training.help import compare_help
from training.processes import run_workers
from training.study import grid, grid_settings
from training.study.compare_parse import OWN_KEYS_HELP, parse_settings, resolve_resume
from training.study.compare_settings import (
    ARGV_TAG,
    CompareSettings,
    child_configs,
    tuned_description,
    variants,
)
from training.study.grid_worker import cell_list, run_cells
from training.study.tune.storage import redacted, storage_location, wait_for_attr
from training.tags import COMPARE_TAG, TUNED_TAG

GRID_TAG = "losslab.grid"  # the parent's Optuna study (its cells)
PARENT_WAIT_S = 600.0  # for the parent run of a grid another command has just created


class CompareIncomplete(RuntimeError):
    """Some cells failed; the report covers the others."""


def fingerprint(settings: CompareSettings) -> dict:
    """What makes a grid: everything but the worker count (the same grid for any workers)."""
    return {**settings.to_dict(), "datasets": list(settings.dataset_list())}


def compare(settings: CompareSettings):
    """Fill the compare's grid (this process, or `workers` local workers), then build, print
    and log the report. → `Report` (None in a local worker: its launcher reports)."""
    # Imported here, not at the top: `python -m training.compare --help` and the parser above
    # must answer without TensorFlow and MLflow (6 s); these run once the settings are valid.
    with signals_default():  # a signal while the C++ libraries load ends the process at once
        from training import quiet  # noqa: PLC0415 (importing it imports TensorFlow quietly)

        quiet.import_tensorflow()  # before Keras does, or TensorFlow's start-up lines show
        import mlflow  # noqa: PLC0415
        import tensorflow as tf  # noqa: PLC0415

        from training.run import checkpoint, tracking  # noqa: PLC0415
        from training.study.report import build_report, publish  # noqa: PLC0415

    settings = resolve_resume(settings)  # resume=<parent>: its own settings
    worker = os.environ.get(grid_settings.WORKER_ENV) is not None  # its env set the threads
    cells = cell_list(settings, child_configs)
    checkpoint.check_root(cells[0].config.checkpoint_dir)  # exit 2 before the parent exists
    if not worker and (warning := grid_settings.pin_threads(tf)) is not None:
        print(f"warning: {warning}", file=sys.stderr, flush=True)  # after the input checks
    location = storage_location()
    name = grid.study_name(fingerprint(settings))
    study, created = grid.open_grid(name, location)
    if worker:  # a launcher's local worker
        return _work(settings, study, settings.resume, cells)
    workers = grid_settings.worker_count(settings.workers)  # gpus without one: exit 2 here
    # Another command made the grid a moment ago: its parent run (it may be migrating a new
    # store first, minutes on a busy machine).
    parent_id = None if created else (
        wait_for_attr(study, grid.PARENT_ATTR, timeout=PARENT_WAIT_S) or settings.resume)
    parent_config = Config(dataset=settings.dataset_list()[0],
                           experiment=settings.experiment_name(),
                           run_name=settings.parent_name())
    with tracking.open_run(parent_config, run_id=parent_id) as parent:
        parent_id = parent.info.run_id
        if grid.PARENT_ATTR not in study.user_attrs:
            _describe_parent(settings, name)
            study.set_user_attr(grid.PARENT_ATTR, parent_id)
        grid.reap(study, cells)  # cells of dead workers: FAIL (their runs KILLED)
        grid.enqueue_missing(study, cells)  # new, failed and killed cells run (again)
        states = grid.states(study, cells)
        print(f"grid {name}: {len(cells)} cells, {len(states['done'])} done, "
              f"{len(states['waiting'])} to run, {len(states['running'])} running elsewhere; "
              f"{workers} worker(s); storage {redacted(location)}", flush=True)
        failures: list = []
        if workers == 1:
            run_cells(settings, study, parent_id, cells, failures)
        else:
            _launch(settings, parent_id)
        states = grid.states(study, cells)
        if not states["done"] and failures:
            raise failures[0][2]  # nothing finished: the first error (bad data → exit 2)
        report = build_report(mlflow.MlflowClient(), parent_id)
        publish(mlflow.MlflowClient(), report)
        print("\n" + report.markdown)
        for line in report.warnings:  # again at the end: the table above may scroll them away
            print(f"warning: {line}", file=sys.stderr, flush=True)
        print(f"parent run {parent_id} in experiment {settings.experiment_name()!r}")
        print(f"experiment: {tracking.run_url(experiment_id=parent.info.experiment_id)}")
        print(f"view it: {tracking.run_url(parent)}", flush=True)
        busy = len(states["running"]) + len(states["waiting"])
        if busy:
            print(f"note: {busy} cells are still with other workers; make report "
                  f"PARENT={parent_id} shows them once they finish", flush=True)
        if states["failed"]:
            listed = "; ".join(f"{v} seed {s}: {type(e).__name__}: {e}"
                               for v, s, e in failures) or "see the report's list"
            raise CompareIncomplete(f"{len(states['failed'])} of {len(cells)} cells failed "
                                    f"({listed}); rerun the same command (or make compare "
                                    f"RESUME={parent_id}) to run them again")
    return report


def _describe_parent(settings: CompareSettings, name: str) -> None:
    """The new parent's params and tags (the active run)."""
    import mlflow  # noqa: PLC0415

    mlflow.log_params({k: "none" if v is None else v for k, v in settings.to_dict().items()})
    mlflow.set_tags({COMPARE_TAG: "true", "losslab.dataset": ",".join(settings.dataset_list()),
                     "losslab.losses": ",".join(settings.losses),
                     "losslab.variants": ",".join(v.name for v in variants(settings)),
                     GRID_TAG: name, ARGV_TAG: json.dumps(list(settings.argv))})
    if settings.tune:
        mlflow.set_tag(TUNED_TAG, tuned_description(settings))


def _work(settings: CompareSettings, study, parent_id: str | None, cells) -> None:
    """A local worker: fill cells until none is free; CompareIncomplete if any failed here."""
    if parent_id is None or study.user_attrs.get(grid.PARENT_ATTR) != parent_id:
        raise grid_settings.ConfigError("a grid worker needs resume=<its compare's parent>")
    failures: list = []
    trained = run_cells(settings, study, parent_id, cells, failures)
    print(f"worker done: {trained} cells trained here", flush=True)
    if failures:
        raise CompareIncomplete(f"{len(failures)} cells failed in this worker")


def _launch(settings: CompareSettings, parent_id: str) -> None:
    """`workers` local processes of `python -m training.compare resume=<parent>` (each with
    its GPU or its share of the cores); waits for all. Ctrl-C / SIGTERM is forwarded to each
    (its cell's run ends KILLED); a worker that fails does not stop the others."""
    envs = grid_settings.worker_envs(settings.workers)
    command = [sys.executable, "-m", "training.compare", f"resume={parent_id}"]
    codes = run_workers(command, envs, lambda procs: [proc.wait() for proc in procs])
    if 130 in codes:
        raise KeyboardInterrupt
    if 143 in codes:
        raise RunKilled("SIGTERM")
    if any(code not in (0, 1) for code in codes):  # 1: some cells failed (counted above)
        listed = ", ".join(f"worker {i}: exit {c}" for i, c in enumerate(codes) if c)
        print(f"warning: {listed}", file=sys.stderr, flush=True)


def compare_help_text(argv: list[str]) -> str:
    return compare_help(argv, OWN_KEYS_HELP)


def _show(s: CompareSettings) -> str:
    if s.resume and not s.argv:
        return f"continuing compare {s.resume} (its own settings)"
    return (f"compare on {', '.join(s.dataset_list())}: "
            f"{', '.join(v.name for v in variants(s))} × {s.seeds} seeds, {s.epochs} epochs"
            + (f"; tuned: {tuned_description(s)}" if s.tune else "")
            + (f"; {s.workers} workers" if s.workers != "1" else ""))


def main(argv: list[str] | None = None) -> int:
    return run_cli(compare, sys.argv[1:] if argv is None else argv, resolve=parse_settings,
                   help_text=compare_help_text, show=_show)


if __name__ == "__main__":
    sys.exit(main())
