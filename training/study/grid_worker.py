"""One worker on a compare's grid (`training.study.grid`): tune the variants that need it
(sharing each study's trials with the other workers), then claim free cells one at a time and
train each as a child run of the compare's parent, until no cell is free.

Keras, TensorFlow and MLflow are imported by the functions that train."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import typing

import optuna
from optuna.trial import TrialState

from training.cli import stop_requested
from training.config import SELECTION_METRIC
from training.errors import RunKilled
from training.study import grid
from training.study import tune as tuning
from training.study.compare_settings import CompareSettings, Variant, sweep_label, variants
from training.study.tune.storage import RUN_ATTR
from training.tags import VARIANT_TAG

CELL_TAG = "losslab.cell"  # "<dataset>|<variant>|<seed>" on every child run of a grid
DATASET_TAG = "losslab.dataset"
TUNE_POLL_S = 2.0  # while other workers finish a study's last trials


class _Stopped(Exception):
    """Carries Ctrl-C / SIGTERM out of a cell's training (RunKilled is a BaseException)."""

    def __init__(self, original: BaseException):
        super().__init__(repr(original))
        self.original = original


def study_name(settings: CompareSettings, parent_id: str, dataset: str, variant: str) -> str:
    """`compare-<parent>-<variant>` (one dataset), `compare-<parent>-<dataset>-<variant>`."""
    if len(settings.dataset_list()) == 1:
        return f"compare-{parent_id}-{variant}"
    return f"compare-{parent_id}-{settings.for_dataset(dataset).dataset_label()}-{variant}"


def tuned_params(settings: CompareSettings, parent_id: str, cells: list[grid.Cell],
                 failures: list) -> dict[tuple[str, str], dict | None]:
    """(dataset, variant) → its study's best params ({} nothing to tune; None: tuning failed).
    Every worker joins every study (the trials are shared); each waits until the study is
    complete, so the cells of a variant always train at the same best params."""
    import mlflow  # noqa: PLC0415

    out: dict[tuple[str, str], dict | None] = {}
    first = {}
    for cell in cells:
        first.setdefault((cell.dataset, cell.variant), cell.config)
    for (dataset, variant), config in first.items():
        prefix = "tuned/" if len(settings.dataset_list()) == 1 else \
            f"tuned/{settings.for_dataset(dataset).dataset_label()}/"
        client = mlflow.MlflowClient()
        if not tuning.search_space(config, settings.tune_keys):
            _log_param(client, parent_id, f"{prefix}{variant}", "defaults (no search space)")
            out[(dataset, variant)] = {}
            continue
        objective = SELECTION_METRIC[config.task]
        study = tuning.TuneSettings(
            config=config.replace(epochs=settings.tune_epochs or settings.epochs, run_name=None),
            trials=settings.tune, objective=objective,
            study=study_name(settings, parent_id, dataset, variant), tune_keys=settings.tune_keys)
        print(f"\n=== tuning {variant} on {dataset}: {settings.tune} trials, "
              f"{study.config.epochs} epochs each, on {objective} ===", flush=True)
        try:
            while not (result := tuning.run_study(study, parent_run_id=parent_id)).done:
                if not result.running:  # failed trials left room: run_study takes it
                    continue
                time.sleep(TUNE_POLL_S)  # other workers run the last trials
            if result.best_params is None:
                raise tuning.TrialsFailing(f"no trial of {variant} finished")
        except Exception as exc:  # noqa: BLE001 (its cells are failures; others go on)
            print(f"tuning {variant} failed: {type(exc).__name__}: {exc}", file=sys.stderr,
                  flush=True)
            failures.append((variant, None, exc))
            out[(dataset, variant)] = None
            continue
        for key, value in result.best_params.items():
            _log_param(client, parent_id, f"{prefix}{variant}/{key}",
                       "none" if value is None else value)
        client.log_metric(parent_id, f"{prefix}{variant}/best_value", result.best_value)
        out[(dataset, variant)] = result.best_params
    return out


def _log_param(client, run_id: str, key: str, value) -> None:
    """A param every worker may log: the same value twice is accepted by MLflow."""
    with contextlib.suppress(Exception):  # another worker logged it first (a race)
        if key not in client.get_run(run_id).data.params:
            client.log_param(run_id, key, value)


@contextlib.contextmanager
def _heartbeat(study: optuna.Study, trial: optuna.Trial):
    """Optuna heartbeats of the claimed trial on an RDB storage (a worker that dies stops
    beating; after the grace period any worker fails the trial and frees the cell)."""
    storage = study._storage  # noqa: SLF001 (the study's storage object)
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat():
        while True:
            with contextlib.suppress(Exception):
                storage.record_heartbeat(trial._trial_id)  # noqa: SLF001
            if stop.wait(interval):
                return

    threading.Thread(target=beat, daemon=True, name="grid-heartbeat").start()
    try:
        yield
    finally:
        stop.set()


def _finished_run(parent_id: str, key: str) -> str | None:
    """A FINISHED child run of the cell already in the store (its worker died between the
    run's end and telling Optuna): adopted instead of training the cell again."""
    import mlflow  # noqa: PLC0415

    client = mlflow.MlflowClient()
    parent = client.get_run(parent_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent_id}' and tags.`{CELL_TAG}` = '{key}' "
        "and attributes.status = 'FINISHED'", max_results=1)
    return runs[0].info.run_id if runs else None


def run_cells(settings: CompareSettings, study: optuna.Study, parent_id: str,
              cells: list[grid.Cell], failures: list) -> int:
    """Claim and train free cells until none is left → how many this worker trained.
    `failures` gets (variant, seed, exception) per cell that failed here."""
    import keras  # noqa: PLC0415 (heavy)

    from training.run.trainer import train  # noqa: PLC0415

    by_key = {c.key: c for c in cells}
    tuned = tuned_params(settings, parent_id, cells, failures) if settings.tune else {}
    sweeps = {v.name: v for v in variants(settings)}
    done = 0
    while True:
        if stop_requested():  # a SIGTERM whose RunKilled a library swallowed
            raise RunKilled("SIGTERM")
        claimed = None
        try:
            with grid.signals_deferred():  # a claim is never left half made
                claimed = grid.claim(study)
            if claimed is None:
                if not grid.reap(study, cells):  # cells of dead workers are free again
                    return done
                continue
            trial, key = claimed
            done += _run_cell(settings, study, parent_id, by_key[key], trial, tuned, sweeps,
                              failures, train, keras)
        except BaseException:
            if claimed is not None:  # its cell is free again for the next run
                with grid.signals_deferred(), contextlib.suppress(Exception):
                    study.tell(claimed[0], state=TrialState.FAIL, skip_if_finished=True)
            raise


def _run_cell(settings, study, parent_id, cell, trial, tuned, sweeps, failures, train,
              keras) -> int:
    """The claimed cell's run → 1 if it trained here (0: failed, adopted or not tunable)."""
    best = tuned.get((cell.dataset, cell.variant), {})
    if best is None:  # its study failed: the cell fails here, reruns next time
        with grid.signals_deferred():
            study.tell(trial, state=TrialState.FAIL)
        return 0
    if (run_id := _finished_run(parent_id, cell.key)) is not None:
        with grid.signals_deferred():
            trial.set_user_attr(RUN_ATTR, run_id)
            study.tell(trial, 0.0)
        return 0
    config = tuning.apply_params(cell.config, best) if best else cell.config
    print(f"\n=== {cell.variant}, seed {cell.seed} on {cell.dataset} ===", flush=True)
    keras.utils.clear_session()  # drop the previous model's graph and memory
    result = _train_cell(train, config, parent_id, cell, trial, study, sweeps)
    if isinstance(result, BaseException):
        print(f"run {cell.variant} seed {cell.seed} failed: {type(result).__name__}: "
              f"{result}", file=sys.stderr, flush=True)
        failures.append((cell.variant, cell.seed, result))
        with grid.signals_deferred():
            study.tell(trial, state=TrialState.FAIL)
        return 0
    with grid.signals_deferred():
        trial.set_user_attr(RUN_ATTR, result)
        study.tell(trial, 0.0)
    return 1


def _train_cell(train, config, parent_id: str, cell: grid.Cell, trial: optuna.Trial,
                study: optuna.Study, sweeps: dict[str, Variant]) -> str | BaseException:
    """Train one cell → its run id, or the exception that failed it. Ctrl-C / SIGTERM: the
    trial is told FAIL (the cell is free for the next run), then the signal goes on."""
    import mlflow  # noqa: PLC0415

    tags = {VARIANT_TAG: cell.variant, CELL_TAG: cell.key, DATASET_TAG: cell.dataset}
    try:
        with _heartbeat(study, trial):
            try:
                run_id = train(config, parent_run_id=parent_id, tags=tags)["run_id"]
            except (KeyboardInterrupt, RunKilled) as exc:
                raise _Stopped(exc) from exc
    except _Stopped as stopped:
        with grid.signals_deferred(), contextlib.suppress(Exception):
            study.tell(trial, state=TrialState.FAIL)
        raise stopped.original from None
    except Exception as exc:  # noqa: BLE001 (recorded, reported, the others go on)
        run_id = getattr(exc, "losslab_run_id", None)
        if run_id:
            trial.set_user_attr(RUN_ATTR, run_id)
        return exc
    variant = sweeps.get(cell.variant)
    if variant is not None and variant.sweep:
        mlflow.MlflowClient().log_param(run_id, f"sweep.{variant.sweep[0]}",
                                        sweep_label(variant.sweep[1]))
    return run_id


def cell_list(settings: CompareSettings, configs: typing.Callable) -> list[grid.Cell]:
    """Every cell of the compare, dataset-major, then variant, then seed."""
    cells = []
    several = len(settings.dataset_list()) > 1
    for dataset in settings.dataset_list():
        label = settings.for_dataset(dataset).dataset_label()
        for variant, config in configs(settings.for_dataset(dataset)):
            if several:  # "idx-mnist-t10k-ce-seed0": one name per run across the datasets
                config = config.replace(run_name=f"{label}-{config.run_name}",
                                        experiment=settings.experiment_name())
            cells.append(grid.Cell(dataset, variant, config.seed, config))
    return cells
