"""Random directions in weight space with filter normalization (Li et al. 2018).

A loss landscape is drawn along directions in the space of all weights. A plain Gaussian
direction has the same scale in every layer, so a layer with small weights is perturbed much
more, relatively, than a layer with large ones, and pictures of two networks (or of one network
trained with and without weight decay, whose weights differ in scale) cannot be compared.
Filter normalization fixes that: every *filter* of the direction is rescaled to the norm of the
matching filter of the weights, so a step of 1 along the direction moves each filter by its own
size. Coordinates along such a direction are therefore *relative*: 0.1 means "about 10 %".

Filters, in Keras's channels-last layout (the output axis is the last one):
- Conv kernel ``(kh, kw, cin, cout)`` (and Conv1D/Conv3D alike): filter ``j`` is ``[..., j]``.
- Dense kernel ``(in, out)``: filter ``j`` is the column ``[:, j]`` (one output unit), a Dense
  layer being a 1×1 convolution.
- Any other array with ``ndim >= 2`` is treated the same way (last axis = filters).
- Arrays with ``ndim <= 1`` (biases, BatchNormalization gamma/beta/moving mean/variance,
  scalars) get a zero direction: the paper leaves them fixed ("ignore bias and BN"), since
  their scale is not tied to a filter and perturbing the moving statistics is meaningless.
- Non-float arrays (counters, RNG states) get a zero direction too.

Reference: Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural Nets",
NeurIPS 2018, arXiv:1712.09913, section 4.
"""

from __future__ import annotations

import numpy as np


def _filter_norms(array: np.ndarray) -> np.ndarray:
    """Euclidean norm of each filter (last axis) of ``array``; shape ``(array.shape[-1],)``."""
    flat = array.reshape(-1, array.shape[-1])  # (elements per filter, filters)
    return np.linalg.norm(flat.astype(np.float64), axis=0)


def filter_normalized_direction(
    weights: list[np.ndarray], seed: int, *, stream: int = 0
) -> list[np.ndarray]:
    """A Gaussian direction with every filter rescaled to the norm of its weight filter.

    Formula, for each array ``w`` with ``ndim >= 2`` and each filter ``j`` (last axis)::

        g ~ N(0, I) with w's shape
        d[..., j] = g[..., j] / ||g[..., j]|| * ||w[..., j]||

    and ``d = 0`` for arrays with ``ndim <= 1`` or a non-float dtype (see the module docstring).
    A weight filter of norm 0 gives a direction filter of norm 0.

    Args:
        weights: the model's weights, as from ``model.get_weights()``; shapes are kept.
        seed: the random seed. The Gaussian draw depends only on ``seed``, ``stream`` and the
            shapes, so two models of the same architecture get the *same* underlying direction
            (rescaled to their own weights): landscapes of different losses are comparable.
        stream: independent stream under one seed (0 and 1 give the two axes of a 2-D slice).

    Returns:
        A list of arrays with the shapes and dtypes of ``weights``.

    Example:
        >>> w = [np.ones((3, 3, 1, 4), np.float32), np.zeros(4, np.float32)]
        >>> d = filter_normalized_direction(w, seed=0)
        >>> np.linalg.norm(d[0][..., 2]), d[1]  # (3.0, array([0., 0., 0., 0.]))
    """
    rng = np.random.default_rng([seed, stream])
    direction = []
    for array in weights:
        array = np.asarray(array)
        if array.ndim <= 1 or not np.issubdtype(array.dtype, np.floating):
            direction.append(np.zeros_like(array))
            continue
        # Drawn in float64 for every array, in order, so the draw does not depend on dtypes.
        gaussian = rng.standard_normal(array.shape)
        scale = _filter_norms(array) / np.maximum(_filter_norms(gaussian), 1e-12)
        direction.append((gaussian * scale).astype(array.dtype))  # scale broadcasts on axis -1
    return direction


def combine(
    center: list[np.ndarray], steps: list[tuple[float, list[np.ndarray]]]
) -> list[np.ndarray]:
    """``center + sum(step * direction)``, array by array, in the dtype of ``center``.

    Non-float arrays are returned unchanged (a direction cannot move an integer counter).

    Args:
        center: list of arrays (the point the directions start from).
        steps: pairs ``(coefficient, direction)``, each direction shaped like ``center``.
    """
    out = []
    for i, base in enumerate(center):
        base = np.asarray(base)
        if not np.issubdtype(base.dtype, np.floating):
            out.append(base)
            continue
        value = base.astype(np.float64)
        for coefficient, direction in steps:
            if coefficient:
                value = value + coefficient * np.asarray(direction[i], np.float64)
        out.append(value.astype(base.dtype))
    return out


def difference(end: list[np.ndarray], start: list[np.ndarray]) -> list[np.ndarray]:
    """``end - start``, array by array (zero for non-float arrays)."""
    if len(end) != len(start):
        raise ValueError(f"weight lists differ in length: {len(end)} != {len(start)}")
    out = []
    for a, b in zip(end, start, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            raise ValueError(f"weight shapes differ: {a.shape} != {b.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            out.append(np.zeros_like(a))
        else:
            out.append((a.astype(np.float64) - b.astype(np.float64)).astype(a.dtype))
    return out
