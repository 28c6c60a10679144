"""The loss of a model at given weights, along a line, on a 2-D grid and on a ring.

Everything here evaluates ``L(w)``: the loss of ``model`` with its weights set to ``w`` on one
fixed subset ``(x, y)``. One evaluation is one ``model.set_weights`` plus one compiled forward
pass per batch (a ``tf.function`` on the TensorFlow backend, eager elsewhere): ``model.evaluate``
per point would cost ~10x more in callbacks, data-adapter and metric overhead.

Definition of L, mirroring Keras's ``compute_loss`` in training:

    L(w) = sum_b n_b * (mean(loss_fn(y_b, model(x_b, training=False))) + sum(model.losses)) / n

over the batches ``b`` of ``batch_size`` examples (``n_b`` examples each, ``n`` in all), with
``model.losses`` the weight penalties (e.g. an L2 ``kernel_regularizer``): they depend on ``w``
and belong to the trained objective. Metric-learning losses (triplet, contrastive) are not
means over independent examples (they need positive pairs inside a batch): pass
``single_batch=True`` to evaluate the whole subset as one batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import keras
import numpy as np

from training.landscape.directions import combine, difference

Weights = list[np.ndarray]


@contextlib.contextmanager
def restored_weights(model: keras.Model) -> Iterator[Weights]:
    """Yield ``model.get_weights()`` and put exactly those weights back on exit, even on error."""
    saved = model.get_weights()
    try:
        yield saved
    finally:
        model.set_weights(saved)


class LossOnData:
    """``L(w)`` of a model on a fixed subset; call it with a list of weight arrays.

    Args:
        model: a built Keras model; its weights are overwritten by each call (use
            ``restored_weights`` to put them back).
        loss_fn: a Keras loss (object, function or name such as ``"mse"``); it may return a
            scalar or one value per example (then averaged).
        x: inputs, shape ``(n, ...)``. y: targets, shape ``(n, ...)``.
        batch_size: examples per forward pass (memory vs. overhead; 256 suits small CNNs).
        single_batch: evaluate all ``n`` examples as one batch (metric-learning losses).
        include_regularization: add ``sum(model.losses)`` (weight penalties), as training does.
    """

    def __init__(
        self,
        model: keras.Model,
        loss_fn: Callable | str,
        x: np.ndarray,
        y: np.ndarray,
        *,
        batch_size: int = 256,
        single_batch: bool = False,
        include_regularization: bool = True,
    ):
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"x and y must hold the same, non-zero number of examples; got "
                             f"{len(x)} and {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.loss_fn = keras.losses.get(loss_fn) if isinstance(loss_fn, str) else loss_fn
        self.include_regularization = include_regularization
        self.n = len(x)
        size = self.n if single_batch else batch_size
        to_tensor = keras.ops.convert_to_tensor
        # Converted once: the same tensors are reused by every one of the ~500 evaluations.
        self.batches = [
            (to_tensor(x[i : i + size]), to_tensor(y[i : i + size]))
            for i in range(0, self.n, size)
        ]
        self.sizes = [min(size, self.n - i) for i in range(0, self.n, size)]
        self._forward = _compile(self._batch_loss)

    def _batch_loss(self, x, y):
        """Scalar loss of one batch (float32), at the model's current weights."""
        prediction = self.model(x, training=False)
        value = keras.ops.mean(keras.ops.cast(self.loss_fn(y, prediction), "float32"))
        if self.include_regularization and self.model.losses:
            penalties = [keras.ops.cast(p, "float32") for p in self.model.losses]
            value = value + keras.ops.sum(keras.ops.stack(penalties))
        return value

    def __call__(self, weights: Weights) -> float:
        self.model.set_weights(weights)
        total = 0.0
        for (x, y), size in zip(self.batches, self.sizes, strict=True):
            total += float(keras.ops.convert_to_numpy(self._forward(x, y))) * size
        return total / self.n


def _compile(fn: Callable) -> Callable:
    """``tf.function`` on the TensorFlow backend (one trace per batch shape); eager otherwise."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # only on this backend

        return tf.function(fn, reduce_retracing=True)
    return fn


def profile_with(
    loss: LossOnData, start: Weights, end: Weights, alphas: Sequence[float]
) -> np.ndarray:
    """``[L((1 - a) * start + a * end) for a in alphas]`` with a prepared ``LossOnData``."""
    step = difference(end, start)
    return np.array([loss(combine(start, [(float(a), step)])) for a in alphas], np.float64)


def surface_with(
    loss: LossOnData, center: Weights, d1: Weights, d2: Weights, coords: Sequence[float]
) -> np.ndarray:
    """``grid[i, j] = L(center + coords[i] * d1 + coords[j] * d2)``; shape ``(k, k)``."""
    k = len(coords)
    grid = np.empty((k, k), np.float64)
    for i, a in enumerate(coords):
        for j, b in enumerate(coords):
            grid[i, j] = loss(combine(center, [(float(a), d1), (float(b), d2)]))
    return grid


def ring_angles(n_directions: int) -> np.ndarray:
    """``n`` equally spaced angles ``2*pi*k/n`` in radians, shape ``(n,)``."""
    if n_directions < 3:
        raise ValueError(f"a ring needs at least 3 directions, got {n_directions}")
    return 2 * np.pi * np.arange(n_directions) / n_directions


def ring_with(
    loss: LossOnData, center: Weights, d1: Weights, d2: Weights, radius: float, angles: np.ndarray
) -> np.ndarray:
    """``L(center + radius * (cos(t) * d1 + sin(t) * d2))`` for each angle ``t``; shape ``(n,)``."""
    points = (combine(center, [(radius * np.cos(t), d1), (radius * np.sin(t), d2)]) for t in angles)
    return np.array([loss(weights) for weights in points], np.float64)


def sharpness(ring_losses: np.ndarray, center_loss: float) -> float:
    """Mean loss increase on a ring around the centre of a 2-D slice.

    Formula (Li et al.'s filter-normalized directions d1, d2; n equally spaced angles t_k):

        sharpness(r) = (1/n) * sum_k L(w* + r*(cos(t_k)*d1 + sin(t_k)*d2)) - L(w*)

    With filter-normalized directions ``r`` is a *relative* radius (each filter moved by about
    ``r`` times its norm), so values of different losses and models are comparable. For a
    quadratic ``L = c + g.s + s'Hs/2`` in the slice coordinates ``s`` and ``n >= 3`` the linear
    and cross terms cancel and ``sharpness(r) = r^2 * (H11 + H22) / 4``: a curvature measure.

    Args:
        ring_losses: ``L`` at the ring points, shape ``(n,)`` (see ``ring_with``).
        center_loss: ``L(w*)`` at the centre.
    """
    return float(np.mean(ring_losses) - center_loss)


def line_profile(
    model: keras.Model,
    loss_fn: Callable | str,
    start: Weights,
    end: Weights,
    x: np.ndarray,
    y: np.ndarray,
    alphas: Sequence[float],
    *,
    batch_size: int = 256,
    single_batch: bool = False,
) -> np.ndarray:
    """Loss along the straight line between two weight vectors (Goodfellow et al. 2015).

    Formula: ``profile[k] = L((1 - alphas[k]) * start + alphas[k] * end)``; ``alphas`` may lie
    outside ``[0, 1]`` (extrapolation). ``L`` is defined in the module docstring. Every float
    weight is interpolated, BatchNormalization moving statistics included: in inference mode
    they match the kernels only near the ends, so BN networks show a narrow dip at ``a = 1``
    (re-estimating the statistics per point, as Garipov et al. 2018 do, would cost a training
    pass per point and is not done).

    Returns:
        Array of shape ``(len(alphas),)``, float64. The model's weights are restored.

    Reference: Goodfellow, Vinyals, Saxe, "Qualitatively characterizing neural network
    optimization problems", ICLR 2015, arXiv:1412.6544.
    """
    loss = LossOnData(model, loss_fn, x, y, batch_size=batch_size, single_batch=single_batch)
    with restored_weights(model):
        return profile_with(loss, start, end, alphas)


def surface(
    model: keras.Model,
    loss_fn: Callable | str,
    center: Weights,
    d1: Weights,
    d2: Weights,
    x: np.ndarray,
    y: np.ndarray,
    coords: Sequence[float],
    *,
    batch_size: int = 256,
    single_batch: bool = False,
) -> np.ndarray:
    """Loss on a 2-D slice of weight space (Li et al. 2018).

    Formula: ``grid[i, j] = L(center + coords[i] * d1 + coords[j] * d2)``: the first index
    walks along ``d1``, the second along ``d2`` (so ``grid.T`` is the image for a plot with
    ``d1`` on the horizontal axis). Cost: ``len(coords)**2`` evaluations.

    Returns:
        Array of shape ``(len(coords), len(coords))``, float64. The model's weights are restored.
    """
    loss = LossOnData(model, loss_fn, x, y, batch_size=batch_size, single_batch=single_batch)
    with restored_weights(model):
        return surface_with(loss, center, d1, d2, coords)
