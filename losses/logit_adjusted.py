"""Logit-adjusted cross entropy: softmax CE on logits shifted by τ·log(class prior)."""

import keras
import numpy as np
from keras import ops

from ._checks import check_nonnegative, check_num_classes, check_weights
from ._labels import class_counts, logits_and_labels

PRIOR_SUM_TOLERANCE = 1e-6


def logit_adjusted_crossentropy(y_true, y_pred, class_priors, tau=1.0, from_logits=True):
    """Per-sample −log softmax(z + τ·log π)_y.

    Args:
        y_true: labels (B,) or (B, 1), or one-hot (B, C).
        y_pred: (B, C) logits z, or probabilities if `from_logits=False` (clipped to
            [epsilon, 1] and logged, then treated as logits).
        class_priors: C positive priors π_c (list, array or tensor).
        tau: τ >= 0; τ = 0 is plain cross entropy.
        from_logits: whether `y_pred` holds logits.

    Returns:
        (B,) float32 losses.
    """
    z, labels = logits_and_labels(y_true, y_pred, from_logits)
    # One (C,) offset broadcast over the batch: a single add before the fused sparse CE kernel.
    offset = float(tau) * ops.log(ops.convert_to_tensor(class_priors, "float32"))
    return ops.sparse_categorical_crossentropy(labels, z + offset[None, :], from_logits=True)


def check_priors(name, values):
    """Returns `values` as a list of floats if all are > 0 and they sum to 1 (within 1e-6)."""
    priors = check_weights(name, values)
    for index, p in enumerate(priors):
        if p == 0:
            raise ValueError(f"Invalid {name}[{index}]=0.0: every prior must be > 0 (log 0).")
    total = float(np.sum(np.asarray(priors, np.float64)))
    if abs(total - 1.0) > PRIOR_SUM_TOLERANCE:
        raise ValueError(
            f"Invalid {name}: they sum to {total!r}, expected 1 (within {PRIOR_SUM_TOLERANCE:g})."
        )
    return priors


@keras.saving.register_keras_serializable(package="losses")
class LogitAdjustedCrossentropy(keras.losses.Loss):
    """Cross entropy on logits shifted by the log class prior: rare classes must win by more.

    Formula:

    ```
    loss_i = -log softmax(z_i + τ · log π)_{y_i},   π_c = share of class c in training
    ```

    Training with the adjusted logits makes the plain logits z estimate the balanced
    (uniform-prior) posterior, so predict with argmax z. At τ = 1 this is Balanced
    Softmax (Ren et al., NeurIPS 2020); τ = 0 is cross entropy.

    Args:
        class_priors: C priors π_c, each > 0, summing to 1 (within 1e-6).
        tau: τ >= 0 (default 1.0), the strength of the adjustment.
        from_logits: `y_pred` holds logits (default True) or probabilities.
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself
            is always float32).

    Example:

    >>> import numpy as np
    >>> loss = LogitAdjustedCrossentropy.from_labels([0, 0, 0, 1])   # π = [0.75, 0.25]
    >>> round(float(loss(np.array([1]), np.array([[0.0, 0.0]]))), 4)  # −log 0.25
    1.3863

    Reference: Menon et al., "Long-tail learning via logit adjustment", ICLR 2021,
    arXiv:2007.07314.
    """

    def __init__(
        self,
        class_priors,
        tau=1.0,
        from_logits=True,
        reduction="sum_over_batch_size",
        name="logit_adjusted_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_priors = check_priors("class_priors", class_priors)
        self.tau = check_nonnegative("tau", tau)
        self.from_logits = bool(from_logits)

    @classmethod
    def from_labels(cls, labels, num_classes=None, tau=1.0, **kwargs):
        """Builds the loss from training labels: π_c = n_c / N.

        Raises ValueError for a class with no examples (its log prior would be −inf).
        """
        counts = np.asarray(class_counts(labels, num_classes), np.float64)
        return cls([float(p) for p in counts / counts.sum()], tau=tau, **kwargs)

    def call(self, y_true, y_pred):
        check_num_classes("class_priors", self.class_priors, y_pred.shape[-1])
        return logit_adjusted_crossentropy(
            y_true, y_pred, self.class_priors, self.tau, self.from_logits
        )

    def get_config(self):
        config = super().get_config()
        config.update(class_priors=self.class_priors, tau=self.tau, from_logits=self.from_logits)
        return config
