"""A quiet TensorFlow import: its C++ start-up lines go nowhere unless DEBUG=1.

Importing this module imports TensorFlow (`import training.quiet` first thing in a package
that uses Keras).

TensorFlow prints, on every import on a machine without a GPU, six lines through absl's C++
logging ("All log messages before absl::InitializeLog()", oneDNN and CUDA-driver notes) that
TF_CPP_MIN_LOG_LEVEL does not silence, since they come before absl reads it. So the import
runs with file descriptor 2 pointed at /dev/null; a Python exception from it still reaches
the user, after stderr is restored. With DEBUG=1, or when the user set TF_CPP_MIN_LOG_LEVEL
themselves, nothing is hidden.
"""

from __future__ import annotations

import contextlib
import os
import sys

from training import USER_TF_LOG_LEVEL


@contextlib.contextmanager
def _stderr_to_devnull():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow() -> None:
    """Imports TensorFlow once (later imports are free), quietly unless asked not to."""
    if "tensorflow" in sys.modules or os.environ.get("DEBUG", "") not in ("", "0"):
        return
    if USER_TF_LOG_LEVEL:
        return
    with _stderr_to_devnull():
        import tensorflow  # noqa: F401, PLC0415 (the point of this module)


import_tensorflow()
