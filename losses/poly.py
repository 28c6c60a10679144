"""Poly-1 loss: cross entropy plus ε times the first polynomial term (1 − p_y)."""

import keras
from keras import ops

from ._checks import check_finite
from ._labels import logits_and_labels


def poly_loss(y_true, y_pred, epsilon=1.0, from_logits=True):
    """Per-sample Poly-1 loss −log p_y + ε·(1 − p_y).

    log p_y comes from the fused sparse CE kernel (a log-softmax, stable at any |logits|),
    and 1 − p_y = −expm1(log p_y) keeps the relative precision of log p_y as p_y → 1, where
    float32 1 − exp(log p_y) is off by up to 6e-8 (all of it when 1 − p_y is that small).
    The extra cost over cross entropy is (B,)-sized.

    Args:
        y_true: labels (B,) or (B, 1), or one-hot (B, C).
        y_pred: (B, C) logits, or probabilities if `from_logits=False` (clipped to
            [epsilon, 1] and logged, then treated as logits).
        epsilon: ε, any finite number; 0 gives cross entropy.
        from_logits: whether `y_pred` holds logits.

    Returns:
        (B,) float32 losses.
    """
    z, labels = logits_and_labels(y_true, y_pred, from_logits)
    ce = ops.sparse_categorical_crossentropy(labels, z, from_logits=True)  # −log p_y
    return ce - float(epsilon) * ops.expm1(-ce)


@keras.saving.register_keras_serializable(package="losses")
class PolyLoss(keras.losses.Loss):
    """Poly-1 loss: cross entropy with the weight of its leading polynomial term tuned by ε.

    Formula:

    ```
    loss_i = -log p_{i, y_i} + ε · (1 − p_{i, y_i}),   p_i = softmax(y_pred_i)
    ```

    Cross entropy is Σ_{j>=1} (1 − p_y)^j / j; Poly-1 changes the first coefficient to
    1 + ε. ε > 0 pushes harder on examples that are already right; ε < 0 softens the
    push. For ε < −1 the loss rises again as p_y → 1 (its minimum is at p_y = −1/ε).

    Args:
        epsilon: ε, any finite number (default 1.0); 0 gives cross entropy.
        from_logits: `y_pred` holds logits (default True) or probabilities.
        reduction, name, dtype: as for every `keras.losses.Loss` (the computation itself
            is always float32).

    Example:

    >>> import numpy as np
    >>> loss = PolyLoss(epsilon=1.0)
    >>> round(float(loss(np.array([0]), np.array([[0.0, 0.0]]))), 4)  # log 2 + 1/2
    1.1931

    Reference: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
    Classification Loss Functions", ICLR 2022, arXiv:2204.12511.
    """

    def __init__(
        self,
        epsilon=1.0,
        from_logits=True,
        reduction="sum_over_batch_size",
        name="poly_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.epsilon = check_finite("epsilon", epsilon)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return poly_loss(y_true, y_pred, self.epsilon, self.from_logits)

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon, from_logits=self.from_logits)
        return config
