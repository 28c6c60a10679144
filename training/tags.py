"""The names of our MLflow tags that more than one module reads; every tag of ours starts
with `losslab.` (MLflow's own keep `mlflow.`)."""

COMPARE_TAG = "losslab.compare"  # "true" on a compare parent run; `make report` looks for it
CHECKPOINT_TAG = "losslab.checkpoint_dir"  # where a run's checkpoint folder is
ERROR_TAG = "losslab.error"  # why a FAILED run failed
PRUNED_TAG = "losslab.pruned"  # "true" on a tuning trial that the pruner stopped
STOPPED_EPOCH_TAG = "losslab.stopped_epoch"  # the last epoch of an early-stopped run
