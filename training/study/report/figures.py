"""Figures of a compare, drawn from plain arrays (matplotlib Agg canvas, no pyplot state).

- `curves`: per metric, one panel; per loss, the mean over seeds as a line and the min–max
  over seeds as a band, against the epoch.
- `per_class_recall`: grouped bars, classes head → tail by training count; bar = mean over
  seeds, whisker = min–max.
- `reliability`: one reliability diagram per loss, test outputs pooled over seeds (15 bins,
  as `training.metrics.expected_calibration_error`).
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from training.metrics import expected_calibration_error

BINS = 15


def _new_figure(size: tuple[float, float]) -> Figure:
    figure = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(figure)  # savefig / mlflow's log_figure need a canvas, not pyplot
    return figure


def _stack(series: list[np.ndarray]) -> np.ndarray:
    """(seeds, epochs) with NaN where a seed has fewer epochs (an unfinished run)."""
    epochs = max(len(s) for s in series)
    out = np.full((len(series), epochs), np.nan)
    for i, s in enumerate(series):
        out[i, : len(s)] = s
    return out


def curves(histories: dict[str, dict[str, list[np.ndarray]]], title: str) -> Figure:
    """Overlaid per-epoch curves of every loss.

    Args:
        histories: metric key (e.g. "val/accuracy") → loss name → one (epochs,) array per seed.
        title: figure title.
    """
    keys = [k for k, per_loss in histories.items() if any(len(s) for v in per_loss.values()
                                                            for s in v)]
    if not keys:
        raise ValueError("curves needs at least one metric with logged values")
    figure = _new_figure((4.2 * len(keys), 3.6))
    panels = figure.subplots(1, len(keys), squeeze=False)[0]
    for axes, key in zip(panels, keys, strict=True):
        for index, (loss, series) in enumerate(histories[key].items()):
            series = [s for s in series if len(s)]
            if not series:
                continue
            values = _stack(series)
            epochs = np.arange(1, values.shape[1] + 1)
            color = f"C{index}"
            axes.plot(epochs, np.nanmean(values, axis=0), color=color, marker="o",
                      markersize=3, label=f"{loss} (n={len(series)})")
            axes.fill_between(epochs, np.nanmin(values, axis=0), np.nanmax(values, axis=0),
                              color=color, alpha=0.2, linewidth=0)
        axes.set(xlabel="epoch", title=key)
        axes.grid(alpha=0.3)
    panels[0].legend(fontsize=8)
    figure.suptitle(f"{title}\nmean over seeds, band = min–max")
    return figure


def per_class_recall(recalls: dict[str, np.ndarray], train_counts: np.ndarray) -> Figure:
    """Test recall per class and loss, classes ordered head → tail.

    Args:
        recalls: loss name → (seeds, C) test recall per class.
        train_counts: (C,) training images per class (the order of the x axis).
    """
    counts = np.asarray(train_counts)
    order = np.argsort(-counts, kind="stable")
    width = 0.8 / max(len(recalls), 1)
    figure = _new_figure((max(7.0, 0.7 * counts.size * max(len(recalls), 1) / 2 + 3), 4.2))
    axes = figure.add_subplot()
    x = np.arange(counts.size)
    for index, (loss, values) in enumerate(recalls.items()):
        values = np.asarray(values, dtype=np.float64)[:, order]
        mean = np.nanmean(values, axis=0)
        # Clipped at 0: mean − min of identical values can round to −1e-17 (matplotlib refuses).
        low = np.clip(mean - np.nanmin(values, axis=0), 0, None)
        high = np.clip(np.nanmax(values, axis=0) - mean, 0, None)
        axes.bar(x + (index - (len(recalls) - 1) / 2) * width, mean, width, yerr=(low, high),
                 capsize=2, label=f"{loss} (n={len(values)})", color=f"C{index}")
    axes.set_xticks(x, [f"{c}\n(n={counts[c]})" for c in order])
    axes.set(ylim=(0, 1.05), ylabel="test recall", xlabel="class (training images)",
             title="per-class test recall, head → tail (mean over seeds, whisker = min–max)")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="lower left")
    return figure


def reliability(pooled: dict[str, tuple[np.ndarray, np.ndarray]], bins: int = BINS) -> Figure:
    """Reliability diagrams side by side, one per loss.

    Args:
        pooled: loss name → (probs (N, C), labels (N,)), the test outputs of all its seeds
            concatenated.
        bins: equal-width confidence bins.
    """
    if not pooled:
        raise ValueError("reliability needs at least one loss")
    figure = _new_figure((3.6 * len(pooled), 3.9))
    panels = figure.subplots(1, len(pooled), squeeze=False, sharey=True)[0]
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for axes, (loss, (probs, labels)) in zip(panels, pooled.items(), strict=True):
        confidence = probs.max(axis=1)
        correct = probs.argmax(axis=1) == labels
        # Bin b = (b/bins, (b+1)/bins], as expected_calibration_error bins them.
        which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
        count = np.bincount(which, minlength=bins)
        accuracy = np.bincount(which, weights=correct, minlength=bins) / np.maximum(count, 1)
        mean_conf = np.bincount(which, weights=confidence, minlength=bins) / np.maximum(count, 1)
        shown = count > 0
        axes.bar(centres[shown], accuracy[shown], width=1 / bins, edgecolor="black",
                 label="accuracy")
        axes.bar(centres[shown], (mean_conf - accuracy)[shown], bottom=accuracy[shown],
                 width=1 / bins, color="red", alpha=0.3, label="gap")
        axes.plot([0, 1], [0, 1], "k--", linewidth=1)
        ece = expected_calibration_error(probs, labels, bins)
        axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence",
                 title=f"{loss}: ECE {ece:.4f}\n(N = {len(labels)}, pooled over seeds)")
    panels[0].set_ylabel("accuracy")
    panels[0].legend(loc="upper left", fontsize=8)
    figure.suptitle(f"reliability diagrams ({bins} bins)")
    return figure
