"""Curvature of a small model measured through ``hessian.HessianOfLoss``, exactly where it can be.

For a model with few trainable parameters (a linear model: ``d + 1``) every measure of
``hessian.py`` is cheap, and two can be made exact:

- the **trace**: Hutchinson's estimate has a per-probe variance ``2 Σ_{i≠j} H_ij²``. On the
  diabetes ridge Hessian that is ≈ 97 against a trace of 22, so a run's default 32 probes give
  a standard error of ≈ 8 % (64: 6 %), and 1 % needs ~2 000 probes for one standard error. With ``dim``
  products on the unit vectors the trace is exact: ``Σ_i e_iᵀ H e_i``.
- the **bottom eigenvalue**: Lanczos on ``Hv`` (``min_eigenvalue``) converges within ``dim``
  steps here; the dense Hessian (``dim`` products, ``H e_i`` as columns) gives every
  eigenvalue at once, a check on both Lanczos ends.

Cost: ``dim`` Hessian-vector products for the dense Hessian (reused for the exact trace),
plus the Lanczos and Hutchinson products. ``MAX_DENSE_DIM`` bounds the dense matrix.
"""

from __future__ import annotations

import keras
import numpy as np

from training.landscape.closed_form import condition_number
from training.landscape.hessian import (
    HessianOfLoss,
    hutchinson_trace,
    min_eigenvalue,
    top_eigenvalues,
)

MAX_DENSE_DIM = 4096  # 4096² float64 = 128 MiB and 4096 products: beyond that, Lanczos only


def dense_hessian(matvec, dim: int) -> np.ndarray:
    """``H`` as a ``(dim, dim)`` array from ``dim`` products with the unit vectors, symmetrised.

    ``½(H + Hᵀ)``: float32 products are symmetric only to rounding (~1e-7 relative).
    """
    if not 1 <= dim <= MAX_DENSE_DIM:
        raise ValueError(f"dim must be in [1, {MAX_DENSE_DIM}] for a dense Hessian, got {dim}")
    columns = np.empty((dim, dim))
    for i in range(dim):
        unit = np.zeros(dim)
        unit[i] = 1.0
        columns[:, i] = matvec(unit)
    return 0.5 * (columns + columns.T)


def measure(model: keras.Model, loss, x: np.ndarray, y: np.ndarray, *, probes: int = 64,
            seed: int = 0, tol: float = 1e-6) -> dict:
    """The curvature of ``mean loss(y, model(x))`` (+ ``model.losses``) at the model's weights.

    Returns ``top`` and ``min`` (Lanczos on ``Hv``, ``hessian.top_eigenvalues`` and
    ``min_eigenvalue``), ``condition`` (``top / min``), ``trace_hutchinson`` and
    ``trace_stderr`` (``probes`` Rademacher probes, ``hessian.hutchinson_trace``),
    ``trace_exact`` and ``eigenvalues`` (ascending, ``(dim,)``) of the dense Hessian,
    ``condition_dense``, ``dim`` and ``products`` (Hv products in all).
    """
    hessian = HessianOfLoss(model, loss, x, y)
    dim = hessian.dim
    with hessian.restored():
        top = float(top_eigenvalues(hessian.operator(), dim, 1, seed=seed, tol=tol)[0])
        bottom = min_eigenvalue(hessian.operator(), dim, seed=seed, tol=tol)
        trace, stderr, _ = hutchinson_trace(hessian.hvp, dim, probes, seed=seed)
        full = dense_hessian(hessian.hvp, dim)
    eigenvalues = np.linalg.eigvalsh(full)
    return {
        "top": top,
        "min": float(bottom),
        "condition": top / bottom if bottom > 0 else float("inf"),
        "trace_hutchinson": trace,
        "trace_stderr": stderr,
        "trace_exact": float(np.trace(full)),
        "eigenvalues": eigenvalues,
        "condition_dense": condition_number(eigenvalues),
        "dim": dim,
        "products": hessian.products,
    }
