"""Figures a person reads at a glance: loss curves, confusion, calibration, retrieval.

Every function returns a matplotlib Figure (Agg backend, no display needed); the caller logs
it with `tracking.log_figure` (which also closes it).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402


def loss_curves(history: dict[str, list[float]], title: str) -> plt.Figure:
    """Left: train/val loss per epoch. Right: every other val/ metric per epoch."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("train/loss", "val/loss"):
        if history.get(key):
            left.plot(range(1, len(history[key]) + 1), history[key], marker="o", label=key)
    left.set(xlabel="epoch", ylabel="loss", title="loss")
    left.grid(alpha=0.3)
    left.legend()
    for key, values in sorted(history.items()):
        if key.startswith("val/") and key not in ("val/loss", "val/ece"):
            right.plot(range(1, len(values) + 1), values, marker=".", label=key)
    right.set(xlabel="epoch", title="validation metrics")
    right.grid(alpha=0.3)
    if right.lines:
        right.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, class_names) -> plt.Figure:
    """Row-normalised confusion matrix (recall on the diagonal), test set."""
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * n + 2), max(4, 0.5 * n + 1.5)))
    ConfusionMatrixDisplay.from_predictions(
        labels,
        predictions,
        labels=list(range(n)),
        display_labels=list(class_names),
        normalize="true",
        values_format=".2f",
        include_values=n <= 20,
        cmap="Blues",
        ax=ax,
        colorbar=False,
    )
    ax.set_title("confusion matrix (rows sum to 1)")
    fig.tight_layout()
    return fig


def reliability_diagram(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> plt.Figure:
    """Accuracy vs confidence in equal-width bins (Guo et al. 2017); gap bars in red."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    centers = (edges[:-1] + edges[1:]) / 2
    acc = np.array([correct[index == b].mean() if np.any(index == b) else 0 for b in range(bins)])
    conf = np.array([confidence[index == b].mean() if np.any(index == b) else 0 for b in range(bins)])
    count = np.bincount(index, minlength=bins)
    fig, ax = plt.subplots(figsize=(5, 5))
    width = 1.0 / bins
    ax.bar(centers, acc, width=width, edgecolor="black", label="accuracy")
    ax.bar(centers, conf - acc, bottom=acc, width=width, color="red", alpha=0.3, label="gap")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ece = float(np.sum(count / max(len(labels), 1) * np.abs(acc - conf)))
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    ax.set_title(f"reliability (ECE = {ece:.4f}, {bins} bins)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def per_class_recall(recall: np.ndarray, train_counts: np.ndarray, class_names) -> plt.Figure:
    """Test recall per class, classes ordered head to tail by training count."""
    order = np.argsort(-np.asarray(train_counts), kind="stable")
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(order) + 2), 4))
    ax.bar(range(len(order)), np.asarray(recall)[order], color="tab:blue")
    ax.set_xticks(range(len(order)), [f"{class_names[i]}\n(n={train_counts[i]})" for i in order])
    ax.set(ylim=(0, 1.05), ylabel="test recall", title="per-class recall, head → tail")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def embedding_projection(embeddings: np.ndarray, labels: np.ndarray, class_names) -> plt.Figure:
    """2-D PCA of test embeddings coloured by class (PCA: deterministic and O(N·D²))."""
    points = PCA(n_components=2, random_state=0).fit_transform(embeddings)
    fig, ax = plt.subplots(figsize=(6, 5))
    for c in np.unique(labels):
        mask = labels == c
        ax.scatter(points[mask, 0], points[mask, 1], s=6, alpha=0.7, label=str(class_names[c]))
    ax.set(title="test embeddings (PCA)", xticks=[], yticks=[])
    ax.legend(markerscale=3, fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def neighbour_grid(
    images: np.ndarray, embeddings: np.ndarray, labels: np.ndarray, queries: int = 8, k: int = 5
) -> plt.Figure:
    """Rows: a query and its k nearest neighbours (itself excluded); green = same class."""
    rng = np.random.default_rng(0)
    picks = rng.choice(len(labels), size=min(queries, len(labels)), replace=False)
    # Only `queries` rows of the distance matrix: O(queries · N).
    dist = ((embeddings[picks, None, :] - embeddings[None, :, :]) ** 2).sum(-1)
    dist[np.arange(len(picks)), picks] = np.inf
    neighbours = np.argsort(dist, axis=1)[:, :k]
    fig, axes = plt.subplots(len(picks), k + 1, figsize=(1.3 * (k + 1), 1.4 * len(picks)))
    axes = np.atleast_2d(axes)
    cmap = "gray" if images.shape[-1] == 1 else None
    for row, (q, nbrs) in enumerate(zip(picks, neighbours, strict=True)):
        for col, idx in enumerate([q, *nbrs]):
            ax = axes[row, col]
            ax.imshow(np.squeeze(images[idx]), cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_title(f"query {labels[q]}", fontsize=8)
            else:
                ok = labels[idx] == labels[q]
                for spine in ax.spines.values():
                    spine.set(color="green" if ok else "red", linewidth=3)
                ax.set_title(("✓ " if ok else "✗ ") + str(labels[idx]), fontsize=8)
    fig.suptitle("nearest neighbours of test queries (green = same class)", fontsize=9)
    fig.tight_layout()
    return fig
