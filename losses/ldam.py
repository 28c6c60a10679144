"""LDAM: cross entropy on scaled cosine logits with a larger margin for rarer classes, and the
class-balanced weights of its deferred re-weighting (DRW) phase."""

import keras
import numpy as np
from keras import ops

from ._checks import (
    check_counts,
    check_nonnegative,
    check_num_classes,
    check_positive,
    check_weights,
)
from ._labels import class_counts, logits_and_labels
from .balanced import weights_from_counts
from .focal import true_and_rest


def ldam_margins(class_counts, max_margin=0.5):
    """Per-class margins Δ_c = max_margin · n_c^(−1/4) / max_k n_k^(−1/4) (list of C floats):
    the rarest class gets `max_margin`, a class with 16× more examples half of it."""
    counts = np.asarray(check_counts("class_counts", class_counts), np.float64)
    raw = counts**-0.25
    return [float(m) for m in check_nonnegative("max_margin", max_margin) * raw / raw.max()]


def drw_weights(class_counts, beta=0.9999):
    """Class-balanced weights for LDAM's deferred re-weighting phase (list of C floats).

    w_c ∝ (1 − β)/(1 − β^{n_c}) (Cui et al. 2019), normalised exactly as
    `losses.weights_from_labels` does (Σ_c (n_c/N)·w_c = 1), so the loss keeps the scale
    of the unweighted loss on the training distribution when the trainer switches to them.
    The authors' code (kaidic/LDAM-DRW) normalises to Σ_c w_c = C instead; there PyTorch's
    weighted mean divides each batch by Σ_i w_{y_i}, which cancels the scale, whereas a
    Keras loss divides by B, where the scale acts like a learning-rate change.

    >>> [round(w, 4) for w in drw_weights([3, 1], beta=0.0)]
    [1.0, 1.0]
    """
    return weights_from_counts(check_counts("class_counts", class_counts), beta)


def ldam_loss(y_true, y_pred, margins, scale=30.0, class_weights=None):
    """Per-sample LDAM loss −w_y · log softmax(s · (z − Δ_y·e_y))_y.

    Args:
        y_true: labels (B,) or (B, 1), or one-hot (B, C); C >= 2.
        y_pred: (B, C) cosine logits z (normally in [−1, 1]), any float dtype.
        margins: C per-class margins Δ_c (see `ldam_margins`).
        scale: s > 0.
        class_weights: None (all 1) or C per-class weights w_c.

    Returns:
        (B,) float32 losses.
    """
    z, labels = logits_and_labels(y_true, y_pred)
    z = z * float(scale)
    # The margin only moves the true logit, so −log softmax(z')_y = softplus(r − z'_y) with
    # r = logsumexp_{c≠y} s·z_c and z'_y = s·(z_y − Δ_y), stable at any |s·z|. The (B, C)
    # logits are never rewritten: a where + fused sparse CE measured 1.4–1.6× Keras's CE on
    # 2 CPU cores, this at most 1.2× (benchmarks/losses.py).
    z_true, rest = true_and_rest(z, labels)
    margin = ops.take(ops.convert_to_tensor(margins, "float32"), labels) * float(scale)
    loss = ops.softplus(rest - (z_true - margin))
    if class_weights is None:
        return loss
    return ops.take(ops.convert_to_tensor(class_weights, "float32"), labels) * loss


@keras.saving.register_keras_serializable(package="losses")
class LDAMLoss(keras.losses.Loss):
    """Label-distribution-aware margin loss: rarer classes must win by a larger cosine margin.

    Formula:

    ```
    loss_i = -w_{y_i} · log softmax(s · (z_i − Δ_{y_i} · e_{y_i}))_{y_i}
    Δ_c    = max_margin · n_c^(−1/4) / max_k n_k^(−1/4)
    ```

    `z` are cosine logits (L2-normalised features times L2-normalised class weights; the
    trainer builds that head for `output="cosine_logits"`), `e_y` the one-hot vector of the
    label. `w` is 1 until the deferred re-weighting (DRW) phase, where the trainer switches
    `class_weights` to `drw_weights(class_counts)`.

    Args:
        class_counts: training examples per class n_c, positive integers (length C).
        max_margin: the margin of the rarest class, >= 0 (default 0.5).
        scale: s > 0 (default 30.0), the inverse temperature of the cosine logits.
        class_weights: None (all 1) or one non-negative weight per class.
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself
            is always float32). The authors' code averages a weighted batch by Σ_i w_{y_i};
            Keras's default reduction divides by B.

    Example:

    >>> import numpy as np
    >>> loss = LDAMLoss([100, 1])   # margins [0.1581, 0.5]
    >>> round(float(loss(np.array([1]), np.array([[0.0, 0.0]]))), 4)  # softplus(30 · 0.5)
    15.0

    Reference: Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware
    Margin Loss", NeurIPS 2019, arXiv:1906.07413.
    """

    def __init__(
        self,
        class_counts,
        max_margin=0.5,
        scale=30.0,
        class_weights=None,
        reduction="sum_over_batch_size",
        name="ldam_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_counts = check_counts("class_counts", class_counts)
        self.max_margin = check_nonnegative("max_margin", max_margin)
        self.scale = check_positive("scale", scale)
        if class_weights is not None:
            class_weights = check_weights("class_weights", class_weights)
            check_num_classes("class_weights", class_weights, len(self.class_counts))
        self.class_weights = class_weights
        self.margins = ldam_margins(self.class_counts, self.max_margin)

    @classmethod
    def from_labels(cls, labels, num_classes=None, max_margin=0.5, scale=30.0, **kwargs):
        """Builds the loss from training labels (n_c = count of class c).

        Raises ValueError for a class with no examples.
        """
        counts = class_counts(labels, num_classes)
        return cls(counts, max_margin=max_margin, scale=scale, **kwargs)

    def call(self, y_true, y_pred):
        check_num_classes("class_counts", self.class_counts, y_pred.shape[-1])
        return ldam_loss(y_true, y_pred, self.margins, self.scale, self.class_weights)

    def get_config(self):
        config = super().get_config()
        config.update(
            class_counts=self.class_counts,
            max_margin=self.max_margin,
            scale=self.scale,
            class_weights=self.class_weights,
        )
        return config
