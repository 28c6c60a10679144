"""`make tune`: an Optuna study over one loss's search space; every trial is a normal run.

    python -m training.tune loss=focal trials=20 dataset=digits epochs=5
    make tune LOSS=focal TRIALS=20 WORKERS=2

Keys: the tuner's own (`TUNE_KEYS`: trials, objective, pruner, study, workers, tune_keys) and
any `Config` key or loss argument, which every trial gets alike (`epochs=5`, `imbalance=10`).
A loss argument given on the line is fixed, not tuned.

- Search space: the loss's registry entry (`Arg.search` in `losses/catalog.py`), plus the
  shared settings named in `tune_keys=` with their `SHARED_RANGES`. Nothing else is tuned.
- Objective: a `val/` metric at the trial's last epoch, by default the task's selection metric
  (`config.SELECTION_METRIC`). Trials never evaluate the test split (`evaluate_test=False`).
- Sampler: TPE, seeded from the config seed and the trial number, so workers sharing a
  study do not draw the same start-up points, and one worker's study replays from its seed.
- Pruning (`pruner=median`, the default): Optuna's MedianPruner on the per-epoch objective,
  never before epoch `PRUNER_WARMUP_EPOCHS` or in the first `PRUNER_STARTUP_TRIALS` trials,
  and never at the last epoch (the trial is then fully trained: its value counts). A pruned
  trial stops cleanly: its MLflow run ends FINISHED with `losslab.pruned=true` and
  `losslab.stopped_epoch` (the trainer's tag); Optuna records it PRUNED.
- Budget: `trials` is the study's total over all its workers and re-runs: a worker stops when
  COMPLETE + PRUNED + RUNNING trials reach it. A FAIL does not count (a crashed, killed or
  diverged trial is redone), but a worker gives up after `MAX_FAILURES_IN_A_ROW` failures.
- Storage (`storage_location`): `OPTUNA_STORAGE` (an Optuna URL, postgresql://... or
  sqlite:///..., or a journal file path), else a journal file beside the MLflow store
  (`<repo>/optuna.journal` for the default store). A server store needs `OPTUNA_STORAGE`.
  Re-running the same command continues the study; other settings under the same study
  name are refused (exit 2): name another with `study=`.
- Workers: `workers=N` starts N local processes of this command with `workers=1` on the same
  study (one GPU each, round-robin, when GPUs are visible). More machines: run the same
  command on each with the same `OPTUNA_STORAGE` and tracking server. Ctrl-C or a crash of
  a worker loses only its running trial (FAIL in Optuna, KILLED in MLflow).

MLflow: one study run (tag `losslab.study=<name>`, params `study.*` and `search.*`) holds
every trial run (tags `losslab.study`, `losslab.trial=<number>`). When the study reaches its
total the study run gets params `best/<param>` and `best/trial`, metric `best/value`
(logged after every trial, step = trials finished), tag `losslab.best_params` (JSON) and the
figures `study/optimization_history.png`, `study/param_importances.png`,
`study/intermediate_values.png`; then it ends FINISHED. Under `make compare TUNE=N` the
study run is a child of the compare's parent run.

Keras, TensorFlow and MLflow are imported only by the functions that train or log, so
`--help` and the compare's parser read this package without them (Optuna itself is light).

Modules, each importing only those above it: `storage` (where the study lives, the budget
counts, dead workers' trials), `settings` (the key=value line, search space, a trial's
config), `mlflow_run` (the study's MLflow run), `driver` (one worker: `run_study`),
`workers` (`workers=N` local processes), `cli` (help text, `main`). The names below are the
package's interface; the tunable constants (PRUNER_STARTUP_TRIALS, MAX_FAILURES_IN_A_ROW,
CREATOR_WAIT_S, ...) are read in their own module, so set or patch them there.
"""

from training.study.tune.cli import USAGE, main, tune, tune_help
from training.study.tune.driver import StudyResult, TrialsFailing, run_study, trial_callback
from training.study.tune.mlflow_run import log_progress, log_summary, study_run
from training.study.tune.settings import (
    PRUNERS,
    REFUSED,
    SHARED_RANGES,
    TUNE_KEYS,
    TuneSettings,
    apply_params,
    check_objective,
    describe_range,
    nothing_to_tune,
    parse_settings,
    parse_tune_keys,
    sample,
    search_space,
)
from training.study.tune.storage import (
    COUNTED,
    RUN_ATTR,
    SETTINGS_ATTR,
    WORKER_ATTR,
    check_storage,
    counted,
    fail_dead_workers_trials,
    finished,
    open_storage,
    open_study,
    redacted,
    storage_location,
)
from training.study.tune.workers import (
    WorkersFailed,
    launch,
    visible_gpus,
    worker_command,
    worker_env,
)
from training.tags import STUDY_TAG, TRIAL_TAG  # the tags every trial run carries

__all__ = [
    "COUNTED", "PRUNERS", "REFUSED", "RUN_ATTR", "SETTINGS_ATTR",
    "SHARED_RANGES", "STUDY_TAG", "TRIAL_TAG", "TUNE_KEYS", "USAGE", "WORKER_ATTR",
    "StudyResult", "TrialsFailing", "TuneSettings", "WorkersFailed", "apply_params",
    "check_objective", "check_storage", "counted", "describe_range", "fail_dead_workers_trials",
    "finished", "launch", "log_progress", "log_summary", "main", "nothing_to_tune",
    "open_storage", "open_study", "parse_settings", "parse_tune_keys", "redacted", "run_study",
    "sample", "search_space", "storage_location", "study_run", "trial_callback", "tune",
    "tune_help", "visible_gpus", "worker_command", "worker_env",
]
