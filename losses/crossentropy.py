"""Plain softmax cross entropy that accepts integer or one-hot labels (`losses.get("ce")`),
with optional label smoothing."""

import keras
from keras import ops

from ._labels import to_float32, to_labels


@keras.saving.register_keras_serializable(package="losses")
class Crossentropy(keras.losses.SparseCategoricalCrossentropy):
    """Keras's sparse categorical cross entropy, from logits by default, any label layout.

    Formula:

    ```
    loss_i = -Σ_c q_{i,c} log p_{i,c},   p_i = softmax(y_pred_i)  (y_pred_i if not from_logits)
    q_i = (1 - ε) onehot(y_i) + ε / C      (ε = label_smoothing; ε = 0: -log p_{i, y_i})
    ```

    A subclass of `keras.losses.SparseCategoricalCrossentropy` (same value, same fused
    backend kernel at ε = 0); the changes are that `y_true` may be labels (B,), (B, 1) or
    one-hot (B, C), so every classification loss in this package takes the same targets, and
    the label smoothing of Keras's `CategoricalCrossentropy` (Szegedy et al. 2016; timm's
    default recipe uses 0.1).

    Args:
        from_logits: `y_pred` holds logits (default True) or probabilities.
        ignore_class: as in Keras: a label value whose samples are masked out (only with
            label_smoothing=0).
        label_smoothing: ε in [0, 1): share of the target mass spread evenly over the C
            classes (default 0).
        reduction, name, dtype: as for every `keras.losses.Loss`.

    Example:

    >>> import numpy as np
    >>> loss = Crossentropy()
    >>> round(float(loss(np.array([0, 1]), np.array([[0.0, 0.0], [0.0, 0.0]]))), 4)  # log 2
    0.6931

    Reference: the standard softmax cross entropy (negative log-likelihood).
    """

    def __init__(
        self,
        from_logits=True,
        ignore_class=None,
        label_smoothing=0.0,
        reduction="sum_over_batch_size",
        name="crossentropy",
        dtype=None,
    ):
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if label_smoothing and ignore_class is not None:
            raise ValueError("ignore_class is not supported together with label_smoothing > 0")
        self.label_smoothing = float(label_smoothing)
        super().__init__(
            from_logits=from_logits,
            ignore_class=ignore_class,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )

    def call(self, y_true, y_pred):
        y_pred = to_float32(y_pred)
        labels = to_labels(y_true, y_pred.shape[-1])
        if not self.label_smoothing:
            return super().call(labels, y_pred)
        one_hot = ops.one_hot(labels, y_pred.shape[-1], dtype="float32")
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=self.from_logits, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
