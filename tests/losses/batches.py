"""Random test batches, one maker per kind of loss input (the `spec.output` kinds); every
loss test draws from these, seeded by the `rng` fixture. NumPy only (any backend)."""

import numpy as np


def unit(x):
    """Rows L2-normalised, float32."""
    x = np.asarray(x, "float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def logits_and_labels(rng, batch=16, classes=4, scale=3.0):
    """(B, C) float32 logits, normal with std `scale`, and (B,) random labels."""
    logits = rng.normal(scale=scale, size=(batch, classes)).astype("float32")
    return logits, rng.integers(0, classes, size=batch)


def cosines_and_labels(rng, batch=16, classes=5):
    """(B, C) float32 cosines, uniform in [−1, 1], and (B,) random labels."""
    cosines = rng.uniform(-1.0, 1.0, size=(batch, classes)).astype("float32")
    return cosines, rng.integers(0, classes, size=batch)


def pk_batch(rng, p=3, k=4, dim=5):
    """P classes × K samples, shuffled, L2-normalised: every anchor has both kinds of pair."""
    labels = rng.permutation(np.repeat(np.arange(p), k))
    return labels, unit(rng.normal(size=(p * k, dim)))


def random_batch(rng, size=12, classes=5, dim=5):
    """Random labels, L2-normalised embeddings: some anchors may have no positive."""
    return rng.integers(0, classes, size=size), unit(rng.normal(size=(size, dim)))


def extreme_logits():
    """(5, 3) logits and labels, rows: p_y → 1, confident mistake, all equal, mixed huge
    values (|z| up to 1e4), a moderate gap of 30."""
    logits = np.array(
        [
            [1e4, 0.0, -1e4],
            [-1e4, 1e4, 0.0],
            [1e4, 1e4, 1e4],
            [-1e4, -1e4, 1e4],
            [30.0, 0.0, 0.0],
        ],
        "float32",
    )
    return logits, np.array([0, 0, 1, 2, 0])


# Embedding batches at the edges, for the labels DEGENERATE_LABELS (two classes of three).
DEGENERATE_LABELS = np.array([0, 0, 0, 1, 1, 1])
DEGENERATE_EMBEDDINGS = {
    "identical": np.ones((6, 3), "float32"),  # every distance 0, every cosine 1
    "zero": np.zeros((6, 3), "float32"),  # zero rows: every cosine 0
    "alternating-antipodal": np.array([[1.0, 0, 0], [-1.0, 0, 0]] * 3, "float32"),  # cos ±1
    "antipodal-classes": np.array([[1.0, 0, 0]] * 3 + [[-1.0, 0, 0]] * 3, "float32"),  # optimum
}


def targets_and_predictions(rng, batch=16, units=1, scale=2.0):
    """(B,) float32 targets and (B, units) predictions, both normal with std `scale`; the
    predictions are targets plus noise, so errors of all sizes against δ = 1 occur."""
    targets = rng.normal(scale=scale, size=batch).astype("float32")
    noise = rng.normal(scale=scale, size=(batch, units))
    return targets, (targets[:, None] + noise).astype("float32")


def degenerate_regression(units):
    """(targets, predictions (4, units)) pairs at the edges: predictions exactly on the
    targets (every kink at once), ±1e4 errors, identical rows. A log-variance column sees
    the same ±1e4 (far below the variance floor, far above the cap)."""
    big = np.array([1e4, -1e4, 0.0, 1.0], "float32")
    return [
        (np.zeros(4), np.zeros((4, units))),  # ŷ = y: the kink of MAE, pinball
        (np.array([1.0, 2.0, 3.0, 4.0]), np.tile([1.0, 2.0, 3.0, 4.0], (units, 1)).T),
        (big, np.tile(-big, (units, 1)).T),  # errors of 2e4
        (np.full(4, 5.0), np.tile(big, (units, 1)).T),
        (np.full(4, 3.0), np.full((4, units), 3.0)),  # identical rows
    ]
