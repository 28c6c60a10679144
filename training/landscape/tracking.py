"""Log a `Landscape` into the active MLflow run (figures, raw values, metrics).

Artifacts, under ``<prefix>/``: the PNGs of ``plots.figures`` and ``grid.npz`` (every field
of the landscape, ``Landscape.load_npz`` reads it back so the figures can be redrawn).
Metrics: ``<prefix>/sharpness``, ``<prefix>/center_loss``, ``<prefix>/line_max`` (highest loss
on the initial -> final line, between 0 and 1: a barrier, if any, shows up here).
``log_curvature`` / ``log_per_class_curvature``: the Hessian measures (``curvature.py``).
"""

from __future__ import annotations

import os
import tempfile

import mlflow
import numpy as np

from training.landscape.hessian import density_on_grid
from training.landscape.landscape import Landscape
from training.plots.landscape import figures, per_class_curvature_figure, spectral_density_figure


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


def curvature_metrics(result: dict, prefix: str = "landscape") -> dict[str, float]:
    """The scalar measures of ``hessian_spectrum``'s result, by metric name."""
    metrics = {f"{prefix}/hessian_top{i + 1}": float(v) for i, v in enumerate(result["top"])}
    metrics.update({
        f"{prefix}/hessian_min": result["min"],
        f"{prefix}/hessian_trace": result["trace"],
        f"{prefix}/hessian_trace_stderr": result["trace_stderr"],
        f"{prefix}/hessian_trace_probes": result["trace_probes"],
        f"{prefix}/sharpness_rho": result["sharpness_rho"],
        f"{prefix}/sharpness_rho_radius": result["rho"],
        f"{prefix}/sharpness_rho_steps": result["rho_steps"],
    })
    return {k: float(v) for k, v in metrics.items()}


def log_curvature(result: dict, *, step: int, title: str = "", figures: bool = True,
                  prefix: str = "landscape") -> None:
    """Log the curvature measures at ``step``; with ``figures``, the spectral density figure
    and ``<prefix>/spectral_density.npz`` (nodes, weights, top: enough to redraw it)."""
    mlflow.log_metrics(curvature_metrics(result, prefix), step=step)
    nodes, weights = result["density_nodes"], result["density_weights"]
    if not figures or not nodes.size:
        return
    grid, density = density_on_grid(nodes, weights)
    subtitle = f"{nodes.shape[0]} probe × {nodes.shape[1]} steps"
    figure = spectral_density_figure(grid, density, title or "Hessian", subtitle=subtitle,
                                     top=float(result["top"][0]))
    mlflow.log_figure(figure, f"{prefix}/spectral_density.png")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "spectral_density.npz")
        np.savez(path, nodes=nodes, weights=weights, top=np.asarray(result["top"]))
        mlflow.log_artifact(path, artifact_path=prefix)


def log_per_class_curvature(per_class: dict, counts: np.ndarray, names: list[str], *,
                            title: str = "", prefix: str = "landscape") -> None:
    """Per-class top and min eigenvalues: a table beside its figure (head → tail)."""
    mlflow.log_table({"class": list(names), "train_images": np.asarray(counts).tolist(),
                      "examples": per_class["examples"].tolist(),
                      "hessian_top1": per_class["top"].tolist(),
                      "hessian_min": per_class["min"].tolist()},
                     f"{prefix}/per_class_curvature.json")
    figure = per_class_curvature_figure(counts, per_class["top"], per_class["min"], names,
                                        title or "loss")
    mlflow.log_figure(figure, f"{prefix}/per_class_curvature.png")
