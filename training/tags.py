"""The names of our MLflow tags that more than one module reads; every tag of ours starts
with `losslab.` (MLflow's own keep `mlflow.`)."""

COMPARE_TAG = "losslab.compare"  # "true" on a compare parent run; `make report` looks for it
CHECKPOINT_TAG = "losslab.checkpoint_dir"  # where a run's checkpoint folder is
ERROR_TAG = "losslab.error"  # why a FAILED run failed
PRUNED_TAG = "losslab.pruned"  # "true" on a tuning trial that the pruner stopped
STOPPED_EPOCH_TAG = "losslab.stopped_epoch"  # the last epoch of an early-stopped run
VARIANT_TAG = "losslab.variant"  # the compare variant of a child run: "focal", "ce[l2=0.0001]"
TUNED_TAG = "losslab.tuned"  # on a tuned compare's parent: "N trials per loss on <objective>"
STUDY_TAG = "losslab.study"  # a study's name, on its MLflow run and on every trial run
TRIAL_TAG = "losslab.trial"  # the Optuna trial number of a trial run
BEST_TAG = "losslab.best_params"  # JSON of a study's current best: params, value, trial
