"""Every figure losslab logs: a run's plots/, a compare report's figures/, a landscape's.

Each function takes plain arrays and returns a `matplotlib.figure.Figure` from
`new_figure` (matplotlib's object-oriented API on an Agg canvas). Nothing here imports
pyplot or calls `matplotlib.use`: importing this package changes no global matplotlib
state, works without a display, and its figures need no closing. The caller logs them
with `training.run.tracking.log_figure` (or an MlflowClient's `log_figure`).

    figure.py          new_figure: size, resolution, layout, canvas
    curves.py          loss_curves (one run), curves (a compare: mean over seeds, band)
    classification.py  confusion_matrix, per_class_recall, reliability(_diagram)
    retrieval.py       embedding_projection, neighbour_grid
    landscape.py       loss-landscape figures (`training.landscape` re-exports them)

A run and the report of its compare draw recall bars, reliability bars and curves with the
same functions: the report passes several losses, each with its seeds pooled.
"""

from training.plots.classification import (
    confusion_matrix,
    per_class_recall,
    reliability,
    reliability_diagram,
)
from training.plots.curves import curves, draw_runs, loss_curves
from training.plots.figure import new_figure
from training.plots.retrieval import embedding_projection, neighbour_grid

__all__ = [
    "confusion_matrix",
    "curves",
    "draw_runs",
    "embedding_projection",
    "loss_curves",
    "neighbour_grid",
    "new_figure",
    "per_class_recall",
    "reliability",
    "reliability_diagram",
]
