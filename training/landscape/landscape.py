"""`compute_landscape`: the 1-D profile, 2-D slice and sharpness of one trained model.

Cost, in loss evaluations (each = one ``set_weights`` + one forward pass over the subset):
``len(alphas) + points**2 + ring_directions + 1``; the defaults give 25 + 441 + 16 + 1 = 483.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import keras
import numpy as np

from training.landscape.directions import filter_normalized_direction
from training.landscape.evaluate import (
    LossOnData,
    profile_with,
    restored_weights,
    ring_angles,
    ring_with,
    sharpness,
    surface_with,
)

# alpha in [-0.25, 1.25], step 1/16: hits 0 (initial) and 1 (final) exactly, and shows a
# little of the loss beyond both ends (Goodfellow et al. extrapolate the same way).
DEFAULT_ALPHAS = np.linspace(-0.25, 1.25, 25)


@dataclasses.dataclass
class Landscape:
    """Loss landscape of one model; every array is float64.

    Attributes:
        alphas: ``(a,)`` positions on the initial -> final line (0 = initial, 1 = final).
        profile: ``(a,)`` loss at each alpha.
        coords: ``(k,)`` relative coordinates of the 2-D slice, symmetric around 0.
        grid: ``(k, k)``, ``grid[i, j] = L(w* + coords[i]*d1 + coords[j]*d2)``.
        sharpness: mean loss increase on the ring of radius ``sharpness_radius``.
        center_loss: ``L(w*)`` at the final weights.
        sharpness_radius: relative radius of the ring.
        ring_angles: ``(n,)`` angles of the ring points (radians).
        ring_losses: ``(n,)`` loss at the ring points.
        seed: seed of the two directions (same seed = same footing across runs).
    """

    alphas: np.ndarray
    profile: np.ndarray
    coords: np.ndarray
    grid: np.ndarray
    sharpness: float
    center_loss: float
    sharpness_radius: float
    ring_angles: np.ndarray
    ring_losses: np.ndarray
    seed: int

    def save_npz(self, path: str) -> None:
        """Write every field to ``path`` (``np.savez``), enough to redraw the figures."""
        fields = dataclasses.fields(self)
        np.savez(path, **{f.name: np.asarray(getattr(self, f.name)) for f in fields})

    @classmethod
    def load_npz(cls, path: str) -> Landscape:
        """Read a file written by ``save_npz``."""
        with np.load(path) as data:
            values = {f.name: data[f.name] for f in dataclasses.fields(cls)}
        for name in ("sharpness", "center_loss", "sharpness_radius"):
            values[name] = float(values[name])
        values["seed"] = int(values["seed"])
        return cls(**values)


def compute_landscape(
    model: keras.Model,
    loss_fn: Callable | str,
    initial_weights: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    points: int = 21,
    radius: float = 1.0,
    seed: int = 0,
    alphas: Sequence[float] | None = None,
    sharpness_radius: float = 0.25,
    ring_directions: int = 16,
    batch_size: int = 256,
    single_batch: bool = False,
) -> Landscape:
    """Loss landscape around the model's current (final) weights ``w*``.

    - Profile: ``L((1-a)*initial + a*w*)`` for ``a`` in ``alphas`` (Goodfellow et al. 2015).
    - Slice: ``L(w* + s*d1 + t*d2)`` for ``s, t`` in ``linspace(-radius, radius, points)``,
      with ``d1``, ``d2`` filter-normalized Gaussian directions from ``seed`` (streams 0 and 1;
      Li et al. 2018). Biases and BatchNormalization parameters stay fixed.
    - Sharpness: ``mean_k L(w* + r*(cos t_k*d1 + sin t_k*d2)) - L(w*)`` over ``ring_directions``
      equally spaced angles at ``r = sharpness_radius`` (see ``evaluate.sharpness``).

    Args:
        model: built Keras model holding the final weights; they are restored on return.
        loss_fn: the run's loss (object, function or name).
        initial_weights: weights before training, shaped like ``model.get_weights()``.
        x, y: the fixed evaluation subset, ``(n, ...)`` each.
        points: odd number of grid points per axis (>= 3), so that ``w*`` is on the grid.
        radius: half-width of the slice, in relative (filter-normalized) units.
        seed: seed of the directions; keep it equal across runs that are compared.
        alphas: line positions; default ``DEFAULT_ALPHAS`` (25 points on [-0.25, 1.25]).
        sharpness_radius: relative radius of the sharpness ring (independent of ``radius``).
        ring_directions: number of ring points (>= 3).
        batch_size, single_batch: see ``evaluate.LossOnData``.

    Returns:
        A ``Landscape``.
    """
    if points < 3 or points % 2 == 0:
        raise ValueError(f"points must be an odd integer >= 3 (centre on the grid), got {points}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    if not sharpness_radius > 0:
        raise ValueError(f"sharpness_radius must be > 0, got {sharpness_radius}")
    alphas = DEFAULT_ALPHAS if alphas is None else np.asarray(alphas, np.float64)
    coords = np.linspace(-radius, radius, points)
    angles = ring_angles(ring_directions)
    loss = LossOnData(model, loss_fn, x, y, batch_size=batch_size, single_batch=single_batch)
    with restored_weights(model) as final:
        d1 = filter_normalized_direction(final, seed, stream=0)
        d2 = filter_normalized_direction(final, seed, stream=1)
        center_loss = loss(final)
        profile = profile_with(loss, initial_weights, final, alphas)
        grid = surface_with(loss, final, d1, d2, coords)
        ring = ring_with(loss, final, d1, d2, sharpness_radius, angles)
    return Landscape(
        alphas=np.asarray(alphas, np.float64),
        profile=profile,
        coords=coords,
        grid=grid,
        sharpness=sharpness(ring, center_loss),
        center_loss=center_loss,
        sharpness_radius=float(sharpness_radius),
        ring_angles=angles,
        ring_losses=ring,
        seed=int(seed),
    )
