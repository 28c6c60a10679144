"""The essay's landscape in closed form: the Hessian of a linear model under MSE and ridge.

A linear model ``ŷ = Xw + b`` (``X``: the ``(n, d)`` features the last Dense layer sees, i.e.
standardised by the model's Normalization layer) trained with the mean squared error
``L = (1/n) Σ (yᵢ − ŷᵢ)²`` and losslab's ``l2=λ``. The project's ``l2`` is a Keras
``kernel_regularizer=L2(λ)`` on the Dense kernel (``models/``; ``training/config.py``): it adds
``λ‖w‖²`` to the loss and leaves the bias unpenalised. The coordinates are the model's trainable
variables in Keras's order, flattened: the kernel ``w`` (``d``) then the bias ``b`` (1), as
``HessianOfLoss`` flattens them. With ``Z = [X 1]`` (``(n, d+1)``):

    H = 2 ZᵀZ / n + 2λ diag(1, …, 1, 0)

exactly, at every ``w`` (the loss is quadratic). On features standardised with the statistics
of the same rows, ``Xᵀ1 = 0``: the bias decouples, ``H = diag(2XᵀX/n + 2λI, 2)``; the kernel
block is the essay's ``2XᵀX/n + 2λI``, every eigenvalue moved up by ``2λ``, and the bias adds
the eigenvalue 2. On diabetes the kernel block's eigenvalues span 0.0167 … 7.86 (seed 0's
training split), so 2 lies inside and the condition number of ``H`` is the kernel block's ``(μ_max + 2λ)/(μ_min + 2λ)``.
On other rows (a subset, the val split) ``Xᵀ1 ≠ 0`` and the formula with ``Z`` still holds.

losslab's ``target_scale=true`` (the default) puts a ``Rescaling`` after the Dense layer,
``ŷ = s·(Zθ) + c`` with ``s`` the training targets' scale, and the loss stays in target units:
``H = 2 s² ZᵀZ/n + 2λD``. The ridge then acts like ``λ/s²`` on the standardised problem
(diabetes: ``s`` = 87.5, so ``λ = 0.1`` acts as 1.3e-5); the essay's matrix is the
``target_scale=false`` model's, which the ridge table trains.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np


def design_matrix(features: np.ndarray, *, bias: bool = True) -> np.ndarray:
    """``Z = [X 1]`` (``(n, d+1)``) or ``X`` (``(n, d)``) in float64."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"features must be a non-empty (n, d) array, got shape {x.shape}")
    return np.hstack([x, np.ones((len(x), 1))]) if bias else x


def linear_mse_hessian(features: np.ndarray, l2: float = 0.0, *, bias: bool = True,
                       scale: float = 1.0) -> np.ndarray:
    """``2 s² ZᵀZ/n + 2λ D`` with ``D`` = 1 on the kernel's coordinates, 0 on the bias's;
    ``s``: the output scale of ``ŷ = s·(Zθ) + c`` (1: the plain linear model)."""
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    z = design_matrix(features, bias=bias)
    penalty = np.ones(z.shape[1])
    if bias:
        penalty[-1] = 0.0
    return 2.0 * scale**2 * z.T @ z / len(z) + 2.0 * l2 * np.diag(penalty)


def condition_number(eigenvalues: np.ndarray) -> float:
    """``λ_max / λ_min`` of a positive spectrum (``inf`` when the smallest is ≤ 0)."""
    values = np.asarray(eigenvalues, np.float64)
    low = float(values.min())
    return float(values.max() / low) if low > 0 else float("inf")


@dataclasses.dataclass(frozen=True)
class LinearHead:
    """A linear model ``ŷ = scale · (trunk(x) · w + b) + offset`` read off its layers."""

    trunk: keras.Model  # inputs → the Dense layer's input (the standardised features)
    dense: keras.layers.Dense
    scale: float  # 1 and 0 without an output Rescaling
    offset: float


def linear_head(model: keras.Model) -> LinearHead:
    """The ``LinearHead`` of a linear model.

    The model ends in a one-output Dense layer without activation, optionally followed by a
    scalar ``Rescaling`` (losslab's ``target_scale=true``: ``ŷ = s·(Zθ) + c``, so the loss in
    target units has the Hessian ``2 s² ZᵀZ/n + 2λD``; ``s = 1`` without it). ValueError
    otherwise, or when anything but that Dense layer has trainable variables: then the MSE is
    not the quadratic of this module, or ``HessianOfLoss``'s coordinates are not ``[w, b]``.
    """
    layers = list(model.layers)
    scale, offset = 1.0, 0.0
    if isinstance(layers[-1], keras.layers.Rescaling):
        value = np.asarray(layers[-1].scale, np.float64)
        shift = np.asarray(layers[-1].offset, np.float64)
        if value.size != 1 or shift.size != 1:
            raise ValueError(f"a linear model's output Rescaling has one scale, got {value}")
        scale, offset = float(value.ravel()[0]), float(shift.ravel()[0])
        layers = layers[:-1]
    last = layers[-1]
    if not isinstance(last, keras.layers.Dense) or last.units != 1:
        raise ValueError(f"a linear model ends in Dense(1), got {type(last).__name__}")
    if keras.activations.serialize(last.activation) != "linear":
        raise ValueError(f"the last Dense layer has activation {last.activation.__name__}")
    expected = [id(v) for v in last.trainable_variables]
    if [id(v) for v in model.trainable_variables] != expected:
        names = [v.path for v in model.trainable_variables]
        raise ValueError(f"a linear model trains only its last Dense layer, got {names}")
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return LinearHead(keras.Model(inputs, last.input), last, scale, offset)


def features_of(model: keras.Model, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """The ``(n, d)`` float64 features the linear head sees (after the model's Normalization)."""
    trunk = linear_head(model).trunk
    parts = [np.asarray(keras.ops.convert_to_numpy(trunk(x[i : i + batch], training=False)))
             for i in range(0, len(x), batch)]
    return np.concatenate(parts).astype(np.float64)


def closed_form_of_model(model: keras.Model, x: np.ndarray, l2: float) -> np.ndarray:
    """``2 s² ZᵀZ/n + 2λD`` of the rows ``x`` as the model sees them (``linear_head``)."""
    head = linear_head(model)
    return linear_mse_hessian(features_of(model, x), l2, bias=head.dense.use_bias,
                              scale=head.scale)
