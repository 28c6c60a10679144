"""Calibration and classification scores against slow explicit loops and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import calibration_bins, classification_metrics, expected_calibration_error

# --- slow references: one bin / one class at a time -------------------------------------------


def ece_reference(probs, labels, bins=15):
    n = len(labels)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [
            i for i in range(n) if lo < max(probs[i]) <= hi or (b == 0 and max(probs[i]) == 0)
        ]
        if not members:
            continue
        acc = np.mean([int(np.argmax(probs[i]) == labels[i]) for i in members])
        conf = np.mean([max(probs[i]) for i in members])
        total += len(members) / n * abs(acc - conf)
    return total


def calibration_bins_reference(probs, labels, bins=15):
    """Bin b holds b/bins < c <= (b+1)/bins (c = 0 in bin 0): one example at a time."""
    confidence, accuracy, count = np.full(bins, np.nan), np.full(bins, np.nan), np.zeros(bins)
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = []
        for i in range(len(labels)):
            c = max(probs[i])
            if lo < c <= hi or (b == 0 and c == 0):
                members.append(i)
        count[b] = len(members)
        if members:
            confidence[b] = np.mean([max(probs[i]) for i in members])
            accuracy[b] = np.mean([int(np.argmax(probs[i]) == labels[i]) for i in members])
    return confidence, accuracy, count


# --- calibration ------------------------------------------------------------------------------


def test_calibration_bins_put_an_edge_in_the_lower_bin():
    probs = np.array([
        [0.0, 0.0, 0.0, 0.0],  # confidence 0: first bin
        [0.25, 0.25, 0.25, 0.25],  # on the edge 1/4: bin 0, not bin 1
        [0.3, 0.3, 0.2, 0.2],
        [0.5, 0.5, 0.0, 0.0],  # on the edge 1/2: bin 1
        [0.75, 0.25, 0.0, 0.0],  # on the edge 3/4: bin 2
        [1.0, 0.0, 0.0, 0.0],  # confidence 1: last bin
    ])
    labels = np.array([0, 1, 0, 0, 0, 1])  # top-1 (the first maximum) right: rows 0, 2, 3, 4
    confidence, accuracy, count = calibration_bins(probs, labels, bins=4)
    assert count.tolist() == [2, 2, 1, 1]
    np.testing.assert_allclose(confidence, [0.125, 0.4, 0.75, 1.0])
    np.testing.assert_allclose(accuracy, [0.5, 1.0, 1.0, 0.0])


def test_calibration_bins_every_edge_of_fifteen():
    # Confidence exactly k/15 goes to bin k - 1, one ulp above it to bin k (ceil(c·15) puts
    # nextafter(11/15) in bin 10: the product rounds down to 11).
    edges = np.arange(1, 16) / 15
    above = np.nextafter(edges[:-1], 2.0)
    confidences = np.concatenate([edges, above])
    probs = np.stack([np.r_[c, np.full(15, (1 - c) / 15)] for c in confidences])  # max = c
    _, _, count = calibration_bins(probs, np.zeros(len(probs), dtype=int))
    expected = np.bincount(np.r_[np.arange(15), np.arange(1, 15)], minlength=15)
    assert count.tolist() == expected.tolist()


def test_calibration_bins_empty_bins_are_nan():
    confidence, accuracy, count = calibration_bins(np.array([[0.9, 0.1]]), np.array([0]), 5)
    assert count.tolist() == [0, 0, 0, 0, 1]
    assert np.isnan(confidence[:4]).all() and np.isnan(accuracy[:4]).all()
    assert (confidence[4], accuracy[4]) == (0.9, 1.0)
    with pytest.raises(ValueError, match="bins must be an integer >= 1"):
        calibration_bins(np.array([[0.9, 0.1]]), np.array([0]), 0)


@pytest.mark.parametrize("bins", [1, 10, 15])
def test_calibration_bins_match_loop_reference(bins):
    rng = np.random.default_rng(bins)
    probs = rng.dirichlet(np.ones(5) * 0.5, size=400)
    probs[:bins] = 0.0
    probs[:bins, 0] = np.arange(1, bins + 1) / bins  # every edge, exactly
    probs[bins] = 0.0  # confidence 0
    labels = rng.integers(0, 5, size=400)
    got = calibration_bins(probs, labels, bins)
    want = calibration_bins_reference(probs, labels, bins)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12)
    assert got[2].dtype == np.int64 and got[2].sum() == 400


def test_ece_hand_computed():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 1])  # correct, wrong, correct
    # 15 bins: confidences 0.9, 0.6, 0.7 fall in three different bins.
    assert expected_calibration_error(probs, labels) == pytest.approx((0.1 + 0.6 + 0.3) / 3)
    # One bin: |accuracy 2/3 - mean confidence 2.2/3|.
    assert expected_calibration_error(probs, labels, bins=1) == pytest.approx(0.2 / 3)


def test_ece_perfectly_confident_and_right_is_zero():
    probs = np.eye(4)[[0, 1, 2, 3, 1]]
    assert expected_calibration_error(probs, np.array([0, 1, 2, 3, 1])) == 0.0


@pytest.mark.parametrize("bins", [1, 10, 15])
def test_ece_matches_loop_reference(bins):
    rng = np.random.default_rng(bins)
    logits = rng.normal(size=(500, 6)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs[:5] = np.eye(6)[:5]  # confidence exactly 1.0 and bin edges
    probs[5] = [0.2, 0.2, 0.2, 0.2, 0.2, 0.0]
    labels = rng.integers(0, 6, size=500)
    got = expected_calibration_error(probs, labels, bins=bins)
    assert got == pytest.approx(ece_reference(probs, labels, bins), abs=1e-12)


# --- classification ---------------------------------------------------------------------------


def classification_reference(probs, labels, num_classes):
    pred = [int(np.argmax(p)) for p in probs]
    recall, f1 = [], []
    for c in range(num_classes):
        tp = sum(1 for t, p in zip(labels, pred, strict=True) if t == c and p == c)
        fn = sum(1 for t, p in zip(labels, pred, strict=True) if t == c and p != c)
        fp = sum(1 for t, p in zip(labels, pred, strict=True) if t != c and p == c)
        recall.append(tp / (tp + fn) if tp + fn else float("nan"))
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    present = [r for r in recall if not np.isnan(r)]
    return {
        "accuracy": sum(t == p for t, p in zip(labels, pred, strict=True)) / len(labels),
        "balanced_accuracy": sum(present) / len(present),
        "macro_f1": sum(f1) / num_classes,
        "recall_per_class": recall,
    }


def test_classification_hand_computed():
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    labels = np.array([0, 1, 1, 2])  # predictions 0, 1, 0, 2
    got = classification_metrics(probs, labels, 3)
    assert got["accuracy"] == pytest.approx(3 / 4)
    np.testing.assert_allclose(got["recall_per_class"], [1.0, 0.5, 1.0])
    assert got["balanced_accuracy"] == pytest.approx(2.5 / 3)
    # F1: class 0 = 2·1/(2+1+0) = 2/3, class 1 = 2/(2+0+1) = 2/3, class 2 = 1.
    assert got["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert got["ece"] == pytest.approx(expected_calibration_error(probs, labels))


def test_classification_matches_loop_reference_with_an_absent_class():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 5))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 4, size=300)  # class 4 never occurs, but is predicted
    got = classification_metrics(probs, labels, 5)
    ref = classification_reference(probs, labels, 5)
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert got[key] == pytest.approx(ref[key], abs=1e-12), key
    np.testing.assert_allclose(got["recall_per_class"], ref["recall_per_class"])
    assert np.isnan(got["recall_per_class"][4])


def test_classification_rejects_bad_inputs():
    with pytest.raises(ValueError, match="probs have 3 columns but num_classes=4"):
        classification_metrics(np.full((2, 3), 1 / 3), np.array([0, 1]), 4)
    with pytest.raises(ValueError, match="labels must be integers in \\[0, 3\\)"):
        classification_metrics(np.full((2, 3), 1 / 3), np.array([0, 3]), 3)
