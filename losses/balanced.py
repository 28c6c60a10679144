"""Class-weighted ("balanced") cross entropy, with weights built from training labels."""

import keras
import numpy as np
from keras import ops

from ._checks import check_num_classes, check_weights
from ._labels import class_counts, to_float32, to_labels


def balanced_crossentropy(y_true, y_pred, class_weights, from_logits=True):
    """Per-sample class-weighted cross entropy −w_y · log p_y.

    Args:
        y_true: labels (B,) or (B, 1), or one-hot (B, C).
        y_pred: (B, C) logits (or probabilities if `from_logits=False`), any float dtype.
        class_weights: C non-negative weights w_c (list, array or tensor).
        from_logits: whether `y_pred` holds logits.

    Returns:
        (B,) float32 losses.
    """
    y_pred = to_float32(y_pred)
    labels = to_labels(y_true, y_pred.shape[-1])
    # The backend's fused sparse CE kernel (one pass over B×C) does the heavy part; the
    # weighting is a gather of B values, so the cost stays that of plain CE.
    ce = ops.sparse_categorical_crossentropy(labels, y_pred, from_logits=from_logits)
    return ops.take(ops.convert_to_tensor(class_weights, "float32"), labels) * ce


def weights_from_labels(labels, num_classes=None, beta=None):
    """Per-class weights from training labels, normalised so that Σ_c (n_c/N)·w_c = 1.

    `beta=None`: w_c ∝ 1/n_c (inverse frequency). `0 <= beta < 1`: w_c ∝ (1−β)/(1−β^{n_c})
    (effective number of samples, Cui et al. 2019; β = 0 gives uniform weights). The
    normalisation keeps the loss at the scale of plain CE on the training distribution.

    Returns:
        list of C floats.
    """
    return weights_from_counts(class_counts(labels, num_classes), beta)


def weights_from_counts(counts, beta=None):
    """`weights_from_labels` from the per-class counts n_c (positive ints) themselves."""
    counts = np.asarray(counts, np.float64)
    if beta is None:
        raw = 1.0 / counts
    else:
        if not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"Invalid beta={beta!r}: expected None or 0 <= beta < 1.")
        raw = (1.0 - beta) / (1.0 - np.power(float(beta), counts))
    weights = raw / np.sum(counts / counts.sum() * raw)
    return [float(w) for w in weights]


@keras.saving.register_keras_serializable(package="losses")
class BalancedCrossentropy(keras.losses.Loss):
    """Cross entropy with a fixed weight per class: rarer class, larger weight.

    Formula:

    ```
    loss_i = -w_{y_i} · log p_{i, y_i},   p_i = softmax(y_pred_i)
    ```

    Unlike `fit(class_weight=...)`, the weights live in the loss, so `evaluate()` reports
    the same quantity that training minimises, on every backend.

    Args:
        class_weights: one non-negative, finite weight per class (length C).
        from_logits: `y_pred` holds logits (default True) or probabilities.
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself
            is always float32).

    Example:

    >>> import numpy as np
    >>> loss = BalancedCrossentropy.from_labels([0, 0, 0, 1])   # weights [2/3, 2]
    >>> round(float(loss(np.array([1]), np.array([[0.0, 0.0]]))), 4)  # 2 · log 2
    1.3863

    Reference: King & Zeng, "Logistic Regression in Rare Events Data", 2001 (inverse
    frequency); Cui et al., "Class-Balanced Loss Based on Effective Number of Samples",
    CVPR 2019 (beta).
    """

    def __init__(
        self,
        class_weights,
        from_logits=True,
        reduction="sum_over_batch_size",
        name="balanced_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = check_weights("class_weights", class_weights)
        self.from_logits = bool(from_logits)

    @classmethod
    def from_labels(cls, labels, num_classes=None, beta=None, **kwargs):
        """Builds the loss from training labels; see `weights_from_labels` for the weights.

        Raises ValueError for a class with no examples or `beta` outside [0, 1).
        """
        return cls(weights_from_labels(labels, num_classes, beta), **kwargs)

    def call(self, y_true, y_pred):
        check_num_classes("class_weights", self.class_weights, y_pred.shape[-1])
        return balanced_crossentropy(y_true, y_pred, self.class_weights, self.from_logits)

    def get_config(self):
        config = super().get_config()
        config.update(class_weights=self.class_weights, from_logits=self.from_logits)
        return config
