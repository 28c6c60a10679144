"""The compare report's figures, drawn by `training.plots` with the functions that draw a
run's own figures; here each loss's seeds are pooled:

- `curves`: per metric, one panel; per loss, the mean over seeds and the min–max band.
- `per_class_recall`: loss name → (seeds, C) recall; bar = mean, whisker = min–max.
- `reliability`: one diagram per loss, its seeds' test outputs concatenated.
- `critical_difference`: losses on the mean-rank axis across datasets, joined where Nemenyi
  cannot separate them (Demšar 2006; drawn by scikit-posthocs), with the CD as a bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from matplotlib.figure import Figure

from training import plots
from training.plots import curves, per_class_recall
from training.plots.classification import BINS
from training.plots.figure import new_figure

__all__ = ["BINS", "critical_difference", "curves", "per_class_recall", "reliability"]


def reliability(pooled: dict[str, tuple[np.ndarray, np.ndarray]], bins: int = BINS) -> Figure:
    """`training.plots.reliability` of each loss's test outputs, all its seeds concatenated."""
    return plots.reliability(
        pooled, bins, title=f"reliability diagrams ({bins} bins), test outputs pooled over seeds")


def critical_difference(mean_ranks: dict[str, float], nemenyi: pd.DataFrame, cd: float,
                        alpha: float, title: str) -> Figure:
    """Critical-difference diagram: `mean_ranks` (loss → mean rank, 1 = best) on the axis,
    a bar joining losses whose Nemenyi p (`nemenyi`, k × k) is ≥ `alpha`, the CD above."""
    figure = new_figure((7.0, 1.2 + 0.3 * len(mean_ranks)))
    axes = figure.subplots()
    sp.critical_difference_diagram(pd.Series(mean_ranks), nemenyi, cd=cd, alpha=alpha,
                                   ax=axes)
    figure.suptitle(title, fontsize=10)
    return figure
