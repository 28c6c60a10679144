"""Classification figures: confusion matrix, per-class recall, reliability diagrams.

`per_class_recall` and `reliability` draw one run (the trainer's plots/) and a compare (the
report's figures/, the seeds of each loss pooled) with the same code; the reliability bars
come from `training.metrics.calibration_bins`, the binning of the logged ECE.
"""

from __future__ import annotations

import warnings

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from training.metrics import calibration_bins, expected_calibration_error
from training.plots.figure import GRID_ALPHA, new_figure

BINS = 15  # expected_calibration_error's default: the diagram shows the logged ECE's bins
MAX_ANNOTATED_CLASSES = 20  # beyond that the numbers in the cells overlap


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, class_names) -> Figure:
    """Confusion matrix with each row divided by its class's count (recall on the diagonal;
    a class absent from ``labels`` is a row of zeros).

    Args:
        labels: (N,) true classes in [0, C), C = len(class_names).
        predictions: (N,) predicted classes in [0, C).
        class_names: C tick labels.
    """
    n = len(class_names)
    y = np.asarray(labels).reshape(-1)
    pred = np.asarray(predictions).reshape(-1)
    counts = np.bincount(y * n + pred, minlength=n * n).reshape(n, n)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure = new_figure((max(5.0, 0.5 * n + 2), max(4.0, 0.5 * n + 1.5)))
    axes = figure.add_subplot()
    axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    if n <= MAX_ANNOTATED_CLASSES:
        for (row, col), value in np.ndenumerate(share):
            axes.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=8,
                      color="white" if value > 0.5 else "black")  # legible on dark cells
    names = [str(c) for c in class_names]
    axes.set_xticks(np.arange(n), names)
    axes.set_yticks(np.arange(n), names)
    axes.set(xlabel="predicted label", ylabel="true label",
             title="confusion matrix (rows sum to 1)")
    return figure


def per_class_recall(recalls, train_counts, class_names=None) -> Figure:
    """Test recall per class, classes ordered head → tail by training count.

    Args:
        recalls: one run's (C,) recall, or loss name → (seeds, C) recall of its seeds: one
            bar per loss and class, height = mean over seeds, whisker = min–max.
        train_counts: (C,) training images per class (the order of the x axis).
        class_names: C tick labels; the class indices by default.
    """
    groups = recalls if isinstance(recalls, dict) else {None: np.atleast_2d(recalls)}
    groups = {k: np.atleast_2d(np.asarray(v, dtype=np.float64)) for k, v in groups.items()}
    counts = np.asarray(train_counts)
    names = [str(c) for c in (range(counts.size) if class_names is None else class_names)]
    order = np.argsort(-counts, kind="stable")
    seeded = any(len(v) > 1 for v in groups.values())
    width = 0.8 / max(len(groups), 1)
    figure = new_figure((max(6.0, 0.35 * counts.size * (len(groups) + 1) + 2), 4.2))
    axes = figure.add_subplot()
    x = np.arange(counts.size)
    for index, (loss, values) in enumerate(groups.items()):
        values = values[:, order]
        with warnings.catch_warnings():  # a class absent from every test split: NaN bar
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(values, axis=0)
            low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        # Clipped at 0: mean − min of identical values can round to −1e-17 (matplotlib refuses).
        whisker = (np.clip(mean - low, 0, None), np.clip(high - mean, 0, None)) if seeded else None
        axes.bar(x + (index - (len(groups) - 1) / 2) * width, mean, width, yerr=whisker,
                 capsize=2, color=f"C{index}",
                 label=None if loss is None else f"{loss} (n={len(values)})")
    axes.set_xticks(x, [f"{names[c]}\n(n={counts[c]})" for c in order])
    title = "per-class test recall, head → tail"
    if seeded:
        title += " (mean over seeds, whisker = min–max)"
    axes.set(ylim=(0, 1.05), ylabel="test recall", xlabel="class (training images)",
             title=title)
    axes.grid(axis="y", alpha=GRID_ALPHA)
    if None not in groups:
        axes.legend(fontsize=8, loc="lower left")
    return figure


def _reliability_panel(axes: Axes, name: str, probs: np.ndarray, labels: np.ndarray,
                       bins: int) -> None:
    confidence, accuracy, count = calibration_bins(probs, labels, bins)
    shown = count > 0  # an empty bin has no accuracy: no bar rather than a bar at 0
    centres = (np.arange(bins)[shown] + 0.5) / bins
    axes.bar(centres, accuracy[shown], width=1 / bins, edgecolor="black", label="accuracy")
    axes.bar(centres, (confidence - accuracy)[shown], bottom=accuracy[shown], width=1 / bins,
             color="red", alpha=0.3, label="gap to confidence")
    axes.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ece = expected_calibration_error(probs, labels, bins)
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence",
             title=f"{name}: ECE {ece:.4f}\n(N = {len(labels)})")


def reliability(outputs: dict[str, tuple[np.ndarray, np.ndarray]], bins: int = BINS, *,
                title: str | None = None) -> Figure:
    """Reliability diagrams side by side, one per entry: accuracy per confidence bin, the gap
    to the bin's mean confidence in red, the ECE of the same bins in the panel title.

    Args:
        outputs: name → (probs (N, C), labels (N,)); a compare passes each loss's test
            outputs of all its seeds concatenated.
        bins: equal-width confidence bins (`training.metrics.calibration_bins`).
        title: figure title; "reliability diagrams (<bins> bins)" by default.

    Raises:
        ValueError: ``outputs`` is empty.
    """
    if not outputs:
        raise ValueError("reliability needs at least one set of outputs")
    figure = new_figure((3.6 * len(outputs) + 0.8, 4.2))
    panels = figure.subplots(1, len(outputs), squeeze=False, sharey=True)[0]
    for axes, (name, (probs, labels)) in zip(panels, outputs.items(), strict=True):
        _reliability_panel(axes, name, probs, labels, bins)
    panels[0].set_ylabel("accuracy")
    panels[0].legend(loc="upper left", fontsize=8)
    figure.suptitle(title or f"reliability diagrams ({bins} bins)")
    return figure


def reliability_diagram(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> Figure:
    """One run's test reliability diagram: `reliability` with one panel."""
    return reliability({"test": (probs, labels)}, bins, title=f"reliability ({bins} bins)")
