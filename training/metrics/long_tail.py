"""Metrics of a long-tailed classifier: post-hoc logit adjustment and shot-group accuracy.

- Post-hoc logit adjustment (Menon et al., ICLR 2021): predict argmax_c (z_c − log π_c), with
  π the training split's class shares. It corrects any trained model for the training prior at
  no cost, so a loss that only matches "CE + this correction" has not beaten CE.
- Shot groups (Liu et al., CVPR 2019, OLTR): mean per-class recall over classes with more than
  100 (many), 20 to 100 (medium) and fewer than 20 (few) training images. A group without a
  class is left out, not reported as 0.
- τ-normalisation (Kang et al., ICLR 2020, "Decoupling representation and classifier"): a
  dense classifier's class vectors w_c are rescaled to w_c / ‖w_c‖^τ and the bias dropped,
  logits f·w_c / ‖w_c‖^τ. Head classes grow longer vectors under instance sampling; τ = 1
  equalises them. τ is chosen on the validation split over `TAU_GRID`. The second free fix.
"""

from __future__ import annotations

import numpy as np

MANY, FEW = 100, 20  # many: n > 100; medium: 20 <= n <= 100; few: n < 20 (Liu et al.)
# τ candidates, 0 to 2 in steps of 0.1 (Kang et al. search [0, 2]); ties go to the smallest τ.
TAU_GRID = tuple(round(0.1 * i, 1) for i in range(21))


def per_class_recall(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float64 (C,) recall of each class; NaN for a class absent from `labels`."""
    hits = np.bincount(labels[predictions == labels], minlength=num_classes).astype(np.float64)
    totals = np.bincount(labels, minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)


def posthoc_balanced_accuracy(logits: np.ndarray, labels: np.ndarray, train_counts) -> float:
    """Balanced accuracy of argmax(z − log π_train). Classes absent from `labels` are skipped.

    Args:
        logits: float (N, C) (for a cosine head: the scaled cosines the loss sees).
        labels: int (N,).
        train_counts: (C,) training images per class, all > 0.
    """
    counts = np.asarray(train_counts, np.float64)
    if counts.ndim != 1 or counts.shape[0] != logits.shape[1] or np.any(counts <= 0):
        raise ValueError(f"train_counts must be {logits.shape[1]} positive counts, got {counts}")
    adjusted = np.asarray(logits, np.float64) - np.log(counts / counts.sum())
    recall = per_class_recall(adjusted.argmax(axis=1), np.asarray(labels), logits.shape[1])
    return float(np.nanmean(recall))


def shot_group_accuracies(recall: np.ndarray, train_counts) -> dict[str, float]:
    """{many,medium,few}_shot_accuracy: mean recall of each group's classes (NaN recalls of
    classes missing from the evaluated split are skipped); groups with no class are absent."""
    counts = np.asarray(train_counts)
    recall = np.asarray(recall, np.float64)
    groups = {"many_shot_accuracy": counts > MANY,
              "medium_shot_accuracy": (counts >= FEW) & (counts <= MANY),
              "few_shot_accuracy": counts < FEW}
    out = {}
    for name, members in groups.items():
        values = recall[members & ~np.isnan(recall)]
        if values.size:
            out[name] = float(values.mean())
    return out


def balanced_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean per-class recall of argmax(logits) over the classes present in `labels`."""
    labels = np.asarray(labels)
    return float(np.nanmean(per_class_recall(np.asarray(logits).argmax(axis=1), labels,
                                             np.asarray(logits).shape[1])))


def tau_normalized_kernel(kernel: np.ndarray, tau: float) -> np.ndarray:
    """float64 (F, C): each class column w_c of a dense kernel divided by ‖w_c‖^τ.

    A zero column stays zero (its norm is floored at 1e-12)."""
    kernel = np.asarray(kernel, np.float64)
    norms = np.maximum(np.linalg.norm(kernel, axis=0), 1e-12)
    return kernel / norms**tau


def choose_tau(features: np.ndarray, labels: np.ndarray, kernel: np.ndarray,
               grid=TAU_GRID) -> tuple[float, float]:
    """(τ, balanced accuracy): the τ of `grid` whose bias-free logits f·w_c/‖w_c‖^τ give the
    best balanced accuracy on (`features` (N, F), `labels` (N,)), the first on ties.

    Pass the validation split: the test split only ever sees the chosen τ."""
    features = np.asarray(features, np.float64)
    best = (float(grid[0]), -1.0)
    for tau in grid:
        score = balanced_accuracy(features @ tau_normalized_kernel(kernel, tau), labels)
        if score > best[1]:
            best = (float(tau), score)
    return best
