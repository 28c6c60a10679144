"""losslab training: config, data, one run (`training.run`), studies of many runs
(`training.study`), loss landscapes (`training.landscape`)."""

import os

# Before TensorFlow or MLflow are first imported: a quiet start. Unless DEBUG=1, or the user
# chose TF_CPP_MIN_LOG_LEVEL themselves, TensorFlow's C++ start-up chatter (CUDA probing on a
# machine without a GPU, oneDNN notes) and MLflow's INFO lines (database creation) stay out of
# the output. Progress bars of artifact uploads stay out of logs either way.
USER_TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ  # read by training.quiet
if os.environ.get("DEBUG", "") in ("", "0"):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
