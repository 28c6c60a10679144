"""losslab training: config, data, the trainer `train(config)`, metrics, tracking, plots."""

import os

# Before TensorFlow is first imported: keep its C++ start-up chatter out of the run's output,
# and MLflow's per-file progress bars out of logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
