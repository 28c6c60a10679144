"""Scores of a model on one split, per task. Used every epoch (val) and once at the end (test).

Both return plain floats (for logging) plus the raw outputs the figures need.
"""

from __future__ import annotations

import numpy as np

from training.metrics import classification_metrics, retrieval_metrics

# Large batches: evaluation has no gradients, so memory per example is small.
EVAL_BATCH = 1024


def predict(model, x: np.ndarray) -> np.ndarray:
    """Model outputs as float32 NumPy, in order. (N, ...) → (N, C) logits or (N, D) embeddings."""
    outputs = [
        np.asarray(model(x[i : i + EVAL_BATCH], training=False), dtype=np.float32)
        for i in range(0, len(x), EVAL_BATCH)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def classification_scores(model, loss_fn, x, y, num_classes: int):
    """→ ({loss, accuracy, balanced_accuracy, macro_f1, ece}, probs (N, C), recall (C,)).

    The loss is the run's own loss object (e.g. class-weighted), so val/loss is comparable with
    train/loss; `fit(class_weight=...)` would weight only training.
    """
    logits = predict(model, x)
    probs = softmax(logits)
    scores = classification_metrics(probs, y, num_classes)
    recall = np.asarray(scores.pop("recall_per_class"))
    scores = {k: float(v) for k, v in scores.items()}
    scores["loss"] = float(np.asarray(loss_fn(y.astype("int32"), logits)))
    return scores, probs, recall


def retrieval_scores(model, x, y):
    """→ ({precision_at_1, recall_at_5, r_precision, map_at_r}, embeddings (N, D))."""
    embeddings = predict(model, x)
    scores = {k: float(v) for k, v in retrieval_metrics(embeddings, y).items()}
    return scores, embeddings
