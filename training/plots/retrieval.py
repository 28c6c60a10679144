"""Retrieval figures of one run: a 2-D projection of the test embeddings, nearest neighbours."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

from training.plots.figure import new_figure


def embedding_projection(embeddings: np.ndarray, labels: np.ndarray, class_names) -> Figure:
    """2-D PCA of test embeddings coloured by class (PCA: deterministic and O(N·D²)).

    Args:
        embeddings: (N, D) test embeddings.
        labels: (N,) classes, indices into ``class_names``.
        class_names: legend entries.
    """
    points = PCA(n_components=2, random_state=0).fit_transform(embeddings)
    figure = new_figure((6.0, 5.0))
    axes = figure.add_subplot()
    for c in np.unique(labels):
        mask = labels == c
        axes.scatter(points[mask, 0], points[mask, 1], s=6, alpha=0.7, label=str(class_names[c]))
    axes.set(title="test embeddings (PCA)", xticks=[], yticks=[])
    axes.legend(markerscale=3, fontsize=8, loc="best")
    return figure


def neighbour_grid(
    images: np.ndarray, embeddings: np.ndarray, labels: np.ndarray, queries: int = 8, k: int = 5
) -> Figure:
    """Rows: a query and its k nearest neighbours (itself excluded); green = same class.

    Args:
        images: (N, H, W, channels) test images, in the order of ``embeddings``.
        embeddings: (N, D) test embeddings.
        labels: (N,) classes.
        queries: rows, drawn with a fixed seed so reruns show the same queries.
        k: neighbours per row.
    """
    rng = np.random.default_rng(0)
    picks = rng.choice(len(labels), size=min(queries, len(labels)), replace=False)
    # Only `queries` rows of the distance matrix: O(queries · N).
    dist = ((embeddings[picks, None, :] - embeddings[None, :, :]) ** 2).sum(-1)
    dist[np.arange(len(picks)), picks] = np.inf
    neighbours = np.argsort(dist, axis=1)[:, :k]
    figure = new_figure((1.3 * (k + 1), 1.4 * len(picks) + 0.4))
    grid = figure.subplots(len(picks), k + 1, squeeze=False)
    cmap = "gray" if images.shape[-1] == 1 else None
    for row, (q, nbrs) in enumerate(zip(picks, neighbours, strict=True)):
        for col, idx in enumerate([q, *nbrs]):
            axes = grid[row, col]
            axes.imshow(np.squeeze(images[idx]), cmap=cmap)
            axes.set_xticks([])
            axes.set_yticks([])
            if col == 0:
                axes.set_title(f"query {labels[q]}", fontsize=8)
            else:
                ok = labels[idx] == labels[q]
                for spine in axes.spines.values():
                    spine.set(color="green" if ok else "red", linewidth=3)
                axes.set_title(("✓ " if ok else "✗ ") + str(labels[idx]), fontsize=8)
    figure.suptitle("nearest neighbours of test queries (green = same class)", fontsize=9)
    return figure
