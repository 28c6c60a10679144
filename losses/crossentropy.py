"""Plain softmax cross entropy that accepts integer or one-hot labels (`losses.get("ce")`)."""

import keras

from ._labels import to_float32, to_labels


@keras.saving.register_keras_serializable(package="losses")
class Crossentropy(keras.losses.SparseCategoricalCrossentropy):
    """Keras's sparse categorical cross entropy, from logits by default, any label layout.

    Formula:

    ```
    loss_i = -log p_{i, y_i},   p_i = softmax(y_pred_i)  (or y_pred_i if from_logits=False)
    ```

    A subclass of `keras.losses.SparseCategoricalCrossentropy` (same value, same fused
    backend kernel); the only change is that `y_true` may be labels (B,), (B, 1) or one-hot
    (B, C), so every classification loss in this package takes the same targets.

    Args:
        from_logits: `y_pred` holds logits (default True) or probabilities.
        ignore_class: as in Keras: a label value whose samples are masked out.
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
        reduction="sum_over_batch_size",
        name="crossentropy",
        dtype=None,
    ):
        super().__init__(
            from_logits=from_logits,
            ignore_class=ignore_class,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )

    def call(self, y_true, y_pred):
        y_pred = to_float32(y_pred)
        return super().call(to_labels(y_true, y_pred.shape[-1]), y_pred)
