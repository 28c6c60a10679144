"""Scores of a model on one split, per task. Used every epoch (val) and once at the end (test).

Both return plain floats (for logging) plus the raw outputs the figures need.
"""

from __future__ import annotations

import keras
import numpy as np

from losses import ProxyHead
from training.metrics import classification_metrics, retrieval_metrics
from training.metrics.long_tail import (
    balanced_accuracy,
    choose_tau,
    posthoc_balanced_accuracy,
    shot_group_accuracies,
    tau_normalized_kernel,
)

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


def regularization_penalty(model) -> float:
    """Σ model.losses at the current weights: the L2 term Keras adds to the training loss."""
    return float(sum(np.asarray(keras.ops.convert_to_numpy(t)) for t in model.losses))


def embedding_model(model):
    """The embedding a retrieval model outputs: the input of a proxy head, else the output."""
    if isinstance(model.layers[-1], ProxyHead):
        return keras.Model(model.input, model.layers[-1].input)
    return model


def dense_head(model):
    """(images → (features, logits) model, the dense `logits` layer) when the classifier ends
    in a Dense layer, else None (a cosine head, a retrieval model)."""
    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense):
        return None
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, [last.input, last.output]), last


def features_and_logits(pair_model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One pass of `dense_head`'s model: float32 features (N, F) and logits (N, C)."""
    features, logits = [], []
    for i in range(0, len(x), EVAL_BATCH):
        f, z = pair_model(x[i : i + EVAL_BATCH], training=False)
        features.append(np.asarray(keras.ops.convert_to_numpy(f), np.float32))
        logits.append(np.asarray(keras.ops.convert_to_numpy(z), np.float32))
    return np.concatenate(features), np.concatenate(logits)


def tau_norm_scores(head, features, y, tau_from=None) -> dict[str, float]:
    """{balanced_accuracy_tau_norm, tau_norm_tau}: the balanced accuracy of the bias-free
    logits f·w_c/‖w_c‖^τ (Kang et al. 2020), τ chosen on `tau_from` = (features, labels) of
    the validation split (None: on (`features`, `y`) themselves, which is the val split)."""
    kernel = np.asarray(keras.ops.convert_to_numpy(head.kernel), np.float64)
    tau, _ = choose_tau(*(tau_from if tau_from is not None else (features, y)), kernel)
    logits = np.asarray(features, np.float64) @ tau_normalized_kernel(kernel, tau)
    return {"balanced_accuracy_tau_norm": balanced_accuracy(logits, y), "tau_norm_tau": tau}


def classification_scores(model, loss_fn, x, y, num_classes: int, train_counts=None,
                          tau_from=None):
    """→ ({loss, accuracy, balanced_accuracy, macro_f1, ece, balanced_accuracy_posthoc,
    <group>_shot_accuracy, balanced_accuracy_tau_norm, tau_norm_tau}, probs (N, C),
    recall (C,)).

    With `train_counts` (training images per class), the long-tail metrics are added:
    post-hoc logit-adjusted balanced accuracy and the many/medium/few-shot group accuracies
    (`training.metrics.long_tail`); for a dense head also the τ-normalised classifier's
    balanced accuracy, τ chosen on `tau_from` = (x_val, y_val) (None: on x, y themselves).

    The loss is the run's own loss object (e.g. class-weighted), so val/loss is comparable with
    train/loss; `fit(class_weight=...)` would weight only training. Like Keras's train/loss it
    includes the model's regularisation penalty (λ‖w‖²): both curves are the objective the
    optimiser minimises. A cosine head's logits are cosines; the probabilities are
    softmax(scale · cosine) with the loss's `scale` (LDAM, ArcFace), as the loss sees them.
    """
    head = dense_head(model) if train_counts is not None else None
    if head is not None:
        features, logits = features_and_logits(head[0], x)
    else:
        logits = predict(model, x)
    scaled = logits * float(getattr(loss_fn, "scale", 1.0))
    probs = softmax(scaled)
    scores = classification_metrics(probs, y, num_classes)
    recall = np.asarray(scores.pop("recall_per_class"))
    scores = {k: float(v) for k, v in scores.items()}
    if train_counts is not None:
        scores["balanced_accuracy_posthoc"] = posthoc_balanced_accuracy(scaled, y, train_counts)
        present = np.bincount(y, minlength=num_classes) > 0
        scores.update(shot_group_accuracies(np.where(present, recall, np.nan), train_counts))
    if head is not None:
        if tau_from is not None:
            tau_from = (features_and_logits(head[0], tau_from[0])[0], tau_from[1])
        scores.update(tau_norm_scores(head[1], features, y, tau_from))
    data_loss = float(np.asarray(loss_fn(y.astype("int32"), logits)))
    scores["loss"] = data_loss + regularization_penalty(model)
    return scores, probs, recall


def retrieval_scores(model, x, y):
    """→ ({precision_at_1, recall_at_5, r_precision, map_at_r}, embeddings (N, D))."""
    embeddings = predict(model, x)
    scores = {k: float(v) for k, v in retrieval_metrics(embeddings, y).items()}
    return scores, embeddings
