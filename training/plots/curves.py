"""Per-epoch curves of one run (`loss_curves`) and of a compare (`curves`).

Both draw each line with `draw_runs`: the mean over a group of runs against the epoch, and
their min–max as a band when the group has more than one run. A run's own figure is the
one-run case, so a run and the report of its compare show the same line for the same data.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from training.plots.figure import GRID_ALPHA, new_figure


def _stack(series: list[np.ndarray]) -> np.ndarray:
    """(runs, epochs), NaN where a run has fewer epochs (an unfinished or early-stopped run)."""
    epochs = max(len(s) for s in series)
    out = np.full((len(series), epochs), np.nan)
    for i, s in enumerate(series):
        out[i, : len(s)] = s
    return out


def draw_runs(axes: Axes, series: list[np.ndarray], label: str, color: str | None = None) -> None:
    """One metric of a group of runs: mean line over the runs (epochs are 1-based, as logged),
    min–max band when there are several. Past a shorter run's end the mean is over the runs
    that reached that epoch."""
    values = _stack(series)
    epochs = np.arange(1, values.shape[1] + 1)
    (line,) = axes.plot(epochs, np.nanmean(values, axis=0), color=color, marker="o",
                        markersize=3, label=label)
    if len(series) > 1:
        axes.fill_between(epochs, np.nanmin(values, axis=0), np.nanmax(values, axis=0),
                          color=line.get_color(), alpha=0.2, linewidth=0)


def loss_curves(history: dict[str, list[float]], title: str) -> Figure:
    """One run. Left: train and val loss per epoch. Right: every other val/ metric.

    Args:
        history: metric key (e.g. "val/accuracy") → its value per epoch.
        title: figure title.
    """
    figure = new_figure((11.0, 4.0))
    left, right = figure.subplots(1, 2)
    for key in ("train/loss", "val/loss"):
        if history.get(key):
            draw_runs(left, [np.asarray(history[key])], key)
    # val/ece is lower-is-better among higher-is-better scores; its curve is in the report.
    for key, values in sorted(history.items()):
        if key.startswith("val/") and key not in ("val/loss", "val/ece") and len(values):
            draw_runs(right, [np.asarray(values)], key)
    left.set(xlabel="epoch", ylabel="loss", title="loss")
    right.set(xlabel="epoch", title="validation metrics")
    for axes in (left, right):
        axes.grid(alpha=GRID_ALPHA)
        if axes.lines:
            axes.legend(fontsize=8)
    figure.suptitle(title)
    return figure


def curves(histories: dict[str, dict[str, list[np.ndarray]]], title: str) -> Figure:
    """A compare: one panel per metric, one line (mean over seeds, band = min–max) per loss.

    Args:
        histories: metric key (e.g. "val/accuracy") → loss name → one (epochs,) array per
            seed. Metrics without any value get no panel; losses without any, no line.
        title: figure title.

    Raises:
        ValueError: no metric has a value.
    """
    keys = [k for k, per_loss in histories.items()
            if any(len(s) for runs in per_loss.values() for s in runs)]
    if not keys:
        raise ValueError("curves needs at least one metric with logged values")
    figure = new_figure((4.2 * len(keys), 3.6))
    panels = figure.subplots(1, len(keys), squeeze=False)[0]
    for axes, key in zip(panels, keys, strict=True):
        # A loss keeps its colour across panels even where it has no values.
        for index, (loss, runs) in enumerate(histories[key].items()):
            runs = [np.asarray(s) for s in runs if len(s)]
            if runs:
                draw_runs(axes, runs, f"{loss} (n={len(runs)})", color=f"C{index}")
        axes.set(xlabel="epoch", title=key)
        axes.grid(alpha=GRID_ALPHA)
    panels[0].legend(fontsize=8)
    figure.suptitle(f"{title}\nmean over seeds, band = min–max")
    return figure
