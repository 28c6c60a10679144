"""Backbones for feature rows (tables): `mlp` and `linear`. They take (F,) rows, or images,
which they flatten (so `model=mlp` also runs on digits).

`linear` has no weights of its own: its features are the input itself, so the head's Dense
layer on it *is* the linear model y = w·x + b (with `l2=λ` the ridge term λ‖w‖² on w), whose
MSE Hessian on standardised features is 2XᵀX/n (+ 2λI): the closed form the landscape is
checked against. `mlp` is Dense → ReLU [→ Dropout] per hidden width.

Cost: an mlp of widths (256, 256) on F inputs has 256·(F + 1) + 256·257 weights (66,816 on
the 3 inputs of a 1×1 RGB image, 68,608 on diabetes' 10 features).
"""

from __future__ import annotations

import keras

from models.trunk import regularizer

DEFAULT_HIDDEN = (256, 256)


def _rows(input_shape):
    """(input tensor, (B, F) tensor): images are flattened, rows pass as they are."""
    shape = tuple(int(d) for d in input_shape)
    inputs = keras.Input(shape, name="features")
    if len(shape) == 1:
        return inputs, inputs
    return inputs, keras.layers.Flatten(name="flatten")(inputs)


def mlp(input_shape, *, l2: float = 0.0, pooling: str = "avg", hidden=DEFAULT_HIDDEN,
        dropout: float = 0.0) -> keras.Model:
    """Rows (B, F) or images (B, H, W, C) → features (B, hidden[-1]).

    Args:
        hidden: widths of the hidden layers, each >= 1 (at least one layer).
        dropout: rate after each hidden layer, in [0, 1); 0 = none.
        l2: ridge penalty λ‖k‖² on every kernel. `pooling` is ignored (no map to pool).
    """
    hidden = tuple(int(h) for h in hidden)
    if not hidden or min(hidden) < 1:
        raise ValueError(f"hidden must be one or more widths >= 1, got {hidden!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    inputs, h = _rows(input_shape)
    for i, width in enumerate(hidden, 1):
        h = keras.layers.Dense(width, activation="relu", kernel_regularizer=regularizer(l2),
                               name=f"dense{i}")(h)
        if dropout > 0:
            h = keras.layers.Dropout(dropout, name=f"dropout{i}")(h)
    return keras.Model(inputs, h, name="backbone")


def linear(input_shape, *, l2: float = 0.0, pooling: str = "avg", **_) -> keras.Model:
    """Rows (B, F) → the same (B, F) (images: flattened); the head is the linear model."""
    inputs, h = _rows(input_shape)
    return keras.Model(inputs, keras.layers.Identity(name="identity")(h), name="backbone")
