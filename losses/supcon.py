"""Supervised contrastive loss (L_out), Khosla et al. 2020, O(B²) memory."""

import keras
from keras import ops

from ._checks import check_positive
from ._labels import to_labels
from ._pairs import masked_logsumexp, pair_masks
from .distances import pairwise_distances


def supcon_loss(y_true, y_pred, temperature=0.1):
    """Per-anchor shares of the SupCon loss; their mean over the batch is the loss.

    The loss is a mean over the anchors that have a positive (in a batch of two or more
    classes). Such an anchor gets B · l_i / (number of such anchors), the others 0, so
    Keras's default "sum_over_batch_size" returns exactly that mean.

    Args:
        y_true: integer labels (B,), (B, 1) or one-hot (B, C).
        y_pred: (B, D) embeddings, any float dtype (computed in float32; rows are
            L2-normalised inside, so S is the cosine similarity).
        temperature: see `SupConLoss`.

    Returns:
        (B,) float32.
    """
    logits = (1.0 - pairwise_distances(y_pred, "cosine")) / temperature  # (B, B) S / τ
    positive, negative = pair_masks(to_labels(y_true))
    not_self = ~ops.eye(ops.shape(logits)[0], dtype="bool")
    # −mean_p log softmax_p = log Σ_{a≠i} e^{z_ia} − mean_p z_ip: the diagonal is masked
    # inside the log-sum-exp, never set to −inf, so every gradient stays finite.
    log_denominator = masked_logsumexp(logits, not_self)
    n_pos = ops.sum(ops.cast(positive, "float32"), axis=1)
    mean_pos_logit = ops.sum(ops.where(positive, logits, 0.0), axis=1) / ops.maximum(n_pos, 1.0)
    valid = ops.logical_and(n_pos > 0, ops.any(negative, axis=1))
    per_anchor = ops.where(valid, log_denominator - mean_pos_logit, 0.0)
    batch = ops.cast(ops.shape(logits)[0], "float32")
    n_valid = ops.sum(ops.cast(valid, "float32"))
    return per_anchor * batch / ops.maximum(n_valid, 1.0)


@keras.saving.register_keras_serializable(package="losses")
class SupConLoss(keras.losses.Loss):
    """Supervised contrastive loss: a softmax over the batch that counts every positive.

    Formula (S cosine similarity; P(i) the positives p != i of anchor i, τ the temperature):

    ```
    l_i  = −1/|P(i)| · Σ_{p∈P(i)} log( exp(S_ip / τ) / Σ_{a≠i} exp(S_ia / τ) )
    loss = mean of l_i over anchors with |P(i)| >= 1
    ```

    This is the paper's L_out (the 1/|P(i)| outside the log), with one view per sample:
    augmented views are just more rows with the same label. A batch without positives gives
    0, and so does a batch of one class: with no negatives anywhere the loss cannot go below
    log |P(i)| and only evens out the positive similarities. Memory O(B²).

    Args:
        temperature: τ > 0 (default 0.1).
        reduction, name, dtype: as for every `keras.losses.Loss`.

    Example:

    >>> import numpy as np
    >>> loss = SupConLoss(temperature=0.1)
    >>> emb = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    >>> # each anchor: positive and one negative at S = 0, one at S = −1: log(2 + e^−10)
    >>> round(float(loss(np.array([0, 0, 1, 1]), emb)), 4)
    0.6932

    Reference: Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020.
    """

    def __init__(
        self,
        temperature=0.1,
        reduction="sum_over_batch_size",
        name="supcon_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = check_positive("temperature", temperature)

    def call(self, y_true, y_pred):
        return supcon_loss(y_true, y_pred, self.temperature)

    def get_config(self):
        config = super().get_config()
        config.update(temperature=self.temperature)
        return config
