"""The compare report's figures, drawn by `training.plots` with the functions that draw a
run's own figures; here each loss's seeds are pooled:

- `curves`: per metric, one panel; per loss, the mean over seeds and the min–max band.
- `per_class_recall`: loss name → (seeds, C) recall; bar = mean, whisker = min–max.
- `reliability`: one diagram per loss, its seeds' test outputs concatenated.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from training import plots
from training.plots import curves, per_class_recall
from training.plots.classification import BINS

__all__ = ["BINS", "curves", "per_class_recall", "reliability"]


def reliability(pooled: dict[str, tuple[np.ndarray, np.ndarray]], bins: int = BINS) -> Figure:
    """`training.plots.reliability` of each loss's test outputs, all its seeds concatenated."""
    return plots.reliability(
        pooled, bins, title=f"reliability diagrams ({bins} bins), test outputs pooled over seeds")
