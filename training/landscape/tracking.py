"""Log a `Landscape` into the active MLflow run (figures, raw values, metrics).

Artifacts, under ``<prefix>/``: the PNGs of ``plots.figures`` and ``grid.npz`` (every field
of the landscape, ``Landscape.load_npz`` reads it back so the figures can be redrawn).
Metrics: ``<prefix>/sharpness``, ``<prefix>/center_loss``, ``<prefix>/line_max`` (highest loss
on the initial -> final line, between 0 and 1: a barrier, if any, shows up here).
"""

from __future__ import annotations

import os
import tempfile

import mlflow
import numpy as np

from training.landscape.landscape import Landscape
from training.plots.landscape import figures


def log_landscape(landscape: Landscape, *, prefix: str = "landscape", title: str = "") -> None:
    """Log figures, ``grid.npz`` and metrics of ``landscape`` into the active MLflow run.

    Args:
        landscape: the result of ``compute_landscape``.
        prefix: artifact folder and metric-name group.
        title: first line of every figure title (e.g. the loss name and run id).

    Raises:
        RuntimeError: when no MLflow run is active (the caller chooses which run to log into).
    """
    if mlflow.active_run() is None:
        raise RuntimeError("log_landscape needs an active MLflow run (mlflow.start_run)")
    for name, figure in figures(landscape, title or "loss landscape").items():
        mlflow.log_figure(figure, f"{prefix}/{name}")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "grid.npz")
        landscape.save_npz(path)
        mlflow.log_artifact(path, artifact_path=prefix)
    inside = (landscape.alphas >= 0) & (landscape.alphas <= 1)
    line_max = float(np.max(landscape.profile[inside])) if inside.any() else float("nan")
    mlflow.log_metrics({
        f"{prefix}/sharpness": landscape.sharpness,
        f"{prefix}/center_loss": landscape.center_loss,
        f"{prefix}/line_max": line_max,
    })
