"""Calibration and classification scores: ECE with its reliability bins, accuracy, balanced
accuracy, macro-F1 and per-class recall."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def calibration_bins(probs, labels, bins: int = 15):
    """Top-1 confidence binned into equal-width bins: the binning of ECE and of every
    reliability diagram (Guo et al., ICML 2017).

    Bins: confidence c = max_k p_k falls in bin b when b/bins < c <= (b+1)/bins, so a
    confidence exactly on an edge goes to the lower bin; c = 0 goes to the first bin and
    c > 1 (float round-off) to the last. This is Guo et al.'s I_m = ((m−1)/M, m/M] and their
    reference code's `gt(lower) * le(upper)` (gpleiss/temperature_scaling). torchmetrics'
    `calibration_error` (`bucketize(..., right=True)`) bins [b/bins, (b+1)/bins) instead, with
    c = 1 alone in an extra bin: the two ECEs differ only when confidences lie exactly on an
    edge, as float64 values b/bins.

    Args:
        probs: (N, C) class probabilities (rows sum to 1).
        labels: (N,) integer labels in [0, C).
        bins: number of bins, >= 1.

    Returns:
        (confidence, accuracy, count), each (bins,): the mean confidence and the fraction of
        correct top-1 predictions in each bin (NaN where the bin is empty), and the number of
        examples per bin (int64).
    """
    p, y = _check_classification_inputs(probs, labels, None)
    if not (isinstance(bins, (int, np.integer)) and bins >= 1):
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # Edges compared as floats, not via ceil(c·bins): the product rounds, and a confidence one
    # ulp above 11/15 would land in the bin below.
    edges = np.arange(bins + 1) / bins
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):  # 0/0 = NaN marks an empty bin
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(which, weights=correct, minlength=bins) / count
    return mean_confidence, accuracy, count


def expected_calibration_error(probs, labels, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al., ICML 2017).

    Formula: ECE = Σ_b (n_b / N) · |accuracy_b − confidence_b| over the bins of
    `calibration_bins` (confidence = max_c p_c; bin b = (b/bins, (b+1)/bins], an edge goes to
    the lower bin, a confidence of exactly 0 to the first).

    Args:
        probs: (N, C) class probabilities (rows sum to 1).
        labels: (N,) integer labels in [0, C).
        bins: number of bins, >= 1.
    """
    confidence, accuracy, count = calibration_bins(probs, labels, bins)
    filled = count > 0
    gap = count[filled] * np.abs(accuracy[filled] - confidence[filled])  # n_b · |acc − conf|
    return float(gap.sum() / count.sum())


def _check_classification_inputs(probs, labels, num_classes: int | None):
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).reshape(-1)
    if p.ndim != 2 or len(p) != len(y) or len(y) == 0:
        raise ValueError(
            f"probs must be (N, C) and labels (N,) with N >= 1; "
            f"got {p.shape} and {np.shape(labels)}"
        )
    classes = p.shape[1] if num_classes is None else num_classes
    if p.shape[1] != classes:
        raise ValueError(f"probs have {p.shape[1]} columns but num_classes={num_classes}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= classes:
        raise ValueError(
            f"labels must be integers in [0, {classes}); got values {np.unique(y)[:10]}"
        )
    return p, y


def classification_metrics(probs, labels, num_classes: int) -> dict:
    """Accuracy, balanced accuracy, macro-F1, ECE and per-class recall.

    Args:
        probs: (N, C) class probabilities, C = num_classes.
        labels: (N,) integer labels in [0, C).
        num_classes: C; classes absent from ``labels`` still count in macro-F1 (as 0 when
            never predicted correctly) and get recall NaN.

    Returns:
        {"accuracy", "balanced_accuracy", "macro_f1", "ece"}: floats;
        "recall_per_class": float64 (C,). Balanced accuracy = mean recall over the classes
        present in ``labels`` (scikit-learn's definition).
    """
    p, y = _check_classification_inputs(probs, labels, num_classes)
    pred = p.argmax(axis=1)
    classes = np.arange(num_classes)
    present = np.bincount(y, minlength=num_classes) > 0
    recall = skm.recall_score(y, pred, labels=classes, average=None, zero_division=0.0)
    recall = np.where(present, recall, np.nan)
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        # Mean of the present classes' recall; equals skm.balanced_accuracy_score without its
        # warning when predictions contain a class absent from y.
        "balanced_accuracy": float(np.nanmean(recall)),
        "macro_f1": float(
            skm.f1_score(y, pred, labels=classes, average="macro", zero_division=0.0)
        ),
        "ece": expected_calibration_error(p, y),
        "recall_per_class": recall.astype(np.float64),
    }
