"""Curvature of the loss at the model's weights, as the field measures it.

``L(w)`` is the loss of ``evaluate.LossOnData`` (the subset's mean loss in inference mode,
BatchNorm on its moving statistics, plus the weight penalties ``model.losses``), seen as a
function of the *trainable* variables only. Its Hessian ``H`` is never formed: every measure
reads it through Hessian-vector products by double backprop, ``Hv = ∇(∇L · v)`` (one product
costs about two gradient evaluations: a forward, a backward and the backward of the backward).

- ``top_eigenvalues`` / ``min_eigenvalue``: Lanczos (ARPACK's implicitly restarted Lanczos,
  ``scipy.sparse.linalg.eigsh``) on ``Hv``. The minimum shows a saddle (Rangwani et al. 2022).
- ``hutchinson_trace``: ``tr H = E[zᵀHz]`` over Rademacher ``z`` (Hutchinson 1989; PyHessian,
  Yao et al. 2020, arXiv:1912.07145), with the standard error of the mean of the probes.
- ``worst_case_sharpness``: ``max_{‖ε‖≤ρ} L(w+ε) − L(w)`` (Keskar et al. 2017) by projected
  normalised-gradient ascent; ``adaptive`` measures ``ε`` in ASAM's scaled norm
  ``‖ε / (|w| + η)‖`` (Kwon et al. 2021). Ascent finds a lower bound of the true maximum.
- ``spectral_density``: stochastic Lanczos quadrature (Ghorbani et al. 2019; PyHessian): the
  Ritz values ``θ`` and weights ``τ`` of a few Lanczos runs; ``density_curve`` smooths them.

Every measure is a pure function of the weights, the subset and its own seed; the model's
weights are restored on return. Costs, in gradient evaluations (``Hv`` ≈ 2): see
``hessian_spectrum``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import keras
import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import tensorflow as tf

Matvec = Callable[[np.ndarray], np.ndarray]
ASAM_ETA = 0.01  # ASAM's η: T_w = |w| + η keeps zero weights (biases at init) movable


class HessianOfLoss:
    """``L``, ``∇L`` and ``Hv`` of a model's loss on a fixed subset, on flat float64 vectors.

    Args:
        model: a built Keras model (TensorFlow backend); its trainable variables are the
            coordinates. Weights are read at each call (``assign`` them to move).
        loss_fn: a Keras loss (object, function or name); per-example values are averaged.
        x, y: the subset, ``(n, ...)`` each.
        batch_size: examples per pass; batch results are weighted by their size.
        single_batch: the whole subset as one batch (metric-learning losses).
        include_regularization: add ``sum(model.losses)`` (the trained objective).

    The loss is computed in the dtype of the first trainable variable (float64 for a float64
    model, float32 otherwise, mixed precision included). ``products`` and ``gradients`` count
    the calls made so far (the cost a measure reports).
    """

    def __init__(self, model: keras.Model, loss_fn, x: np.ndarray, y: np.ndarray, *,
                 batch_size: int = 256, single_batch: bool = False,
                 include_regularization: bool = True):
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"x and y must hold the same, non-zero number of examples; got "
                             f"{len(x)} and {len(y)}")
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError("Hessian-vector products need the TensorFlow backend "
                               f"(KERAS_BACKEND), got {keras.backend.backend()!r}")
        self.model = model
        self.loss_fn = keras.losses.get(loss_fn) if isinstance(loss_fn, str) else loss_fn
        self.include_regularization = include_regularization
        self.variables = list(model.trainable_variables)
        if not self.variables:
            raise ValueError("the model has no trainable variables")
        self.dtype = "float64" if self.variables[0].dtype == "float64" else "float32"
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.dim = int(sum(self.sizes))
        n = len(x)
        size = n if single_batch else batch_size
        self.batches = [(tf.convert_to_tensor(x[i : i + size]), tf.convert_to_tensor(y[i : i + size]),
                         min(size, n - i) / n) for i in range(0, n, size)]
        self.products = 0
        self.gradients = 0
        self._gradient = tf.function(self._batch_gradient, reduce_retracing=True)
        self._hvp = tf.function(self._batch_hvp, reduce_retracing=True)

    # --- per batch, compiled -----------------------------------------------------------
    def _batch_loss(self, x, y):
        prediction = self.model(x, training=False)
        value = keras.ops.mean(keras.ops.cast(self.loss_fn(y, prediction), self.dtype))
        if self.include_regularization and self.model.losses:
            value = value + keras.ops.sum(
                keras.ops.stack([keras.ops.cast(p, self.dtype) for p in self.model.losses]))
        return value

    def _batch_gradient(self, x, y):
        with tf.GradientTape() as tape:
            value = self._batch_loss(x, y)
        return value, tape.gradient(value, self.variables,
                                    unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def _batch_hvp(self, x, y, vector):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                value = self._batch_loss(x, y)
            grads = inner.gradient(value, self.variables,
                                   unconnected_gradients=tf.UnconnectedGradients.ZERO)
            dot = tf.add_n([tf.reduce_sum(g * tf.cast(v, g.dtype))
                            for g, v in zip(grads, vector, strict=True)])
        return outer.gradient(dot, self.variables,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)

    # --- flat vectors ------------------------------------------------------------------
    def _split(self, flat: np.ndarray) -> list[tf.Tensor]:
        parts = np.split(np.asarray(flat, np.float64), np.cumsum(self.sizes)[:-1])
        return [tf.constant(p.reshape(s), dtype=v.dtype)
                for p, s, v in zip(parts, self.shapes, self.variables, strict=True)]

    @staticmethod
    def _flat(tensors) -> np.ndarray:
        return np.concatenate([np.asarray(t, np.float64).ravel() for t in tensors])

    def weights(self) -> np.ndarray:
        """The trainable variables as one float64 vector, shape ``(dim,)``."""
        return self._flat([keras.ops.convert_to_numpy(v) for v in self.variables])

    def assign(self, flat: np.ndarray) -> None:
        """Set the trainable variables from one flat vector."""
        for variable, value in zip(self.variables, self._split(flat), strict=True):
            variable.assign(value)

    @contextlib.contextmanager
    def restored(self) -> Iterator[np.ndarray]:
        """Yield the current weights and put exactly them back on exit, even on error."""
        saved = [keras.ops.convert_to_numpy(v) for v in self.variables]
        try:
            yield self._flat(saved)
        finally:
            for variable, value in zip(self.variables, saved, strict=True):
                variable.assign(value)

    def loss_and_gradient(self) -> tuple[float, np.ndarray]:
        """``L(w)`` and ``∇L(w)`` at the current weights (one gradient evaluation)."""
        self.gradients += 1
        total, grad = 0.0, np.zeros(self.dim)
        for x, y, share in self.batches:
            value, grads = self._gradient(x, y)
            total += share * float(value)
            grad += share * self._flat(grads)
        return total, grad

    def hvp(self, vector: np.ndarray) -> np.ndarray:
        """``H(w) v`` at the current weights, float64 ``(dim,)`` (about 2 gradient evaluations)."""
        self.products += 1
        vector = self._split(np.ravel(vector))
        out = np.zeros(self.dim)
        for x, y, share in self.batches:
            out += share * self._flat(self._hvp(x, y, vector))
        return out

    def operator(self) -> scipy.sparse.linalg.LinearOperator:
        """``H`` as a symmetric SciPy ``LinearOperator`` (for ``eigsh``)."""
        return scipy.sparse.linalg.LinearOperator((self.dim, self.dim), matvec=self.hvp,
                                                  dtype=np.float64)


# --- linear algebra on a matvec (tested on matrices with known spectra) ------------------


def _operator(matvec: Matvec | scipy.sparse.linalg.LinearOperator, dim: int):
    if isinstance(matvec, scipy.sparse.linalg.LinearOperator):
        return matvec
    return scipy.sparse.linalg.LinearOperator((dim, dim), matvec=matvec, dtype=np.float64)


def top_eigenvalues(matvec, dim: int, k: int = 3, *, seed: int = 0,
                    tol: float = 1e-4) -> np.ndarray:
    """The ``k`` largest eigenvalues of a symmetric operator, descending, shape ``(k,)``.

    ARPACK's Lanczos (``eigsh(which="LA")``) from a start vector drawn from ``seed``, so the
    result is a pure function of the operator and the seed. ``tol``: relative accuracy of each
    eigenvalue. Cost: a few dozen products for well-separated top eigenvalues.
    """
    if not 1 <= k < dim:
        raise ValueError(f"k must be in [1, dim) = [1, {dim}), got {k}")
    start = np.random.default_rng([seed, 1]).standard_normal(dim)
    values = scipy.sparse.linalg.eigsh(_operator(matvec, dim), k=k, which="LA", v0=start,
                                       tol=tol, return_eigenvectors=False)
    return np.sort(values)[::-1]


def min_eigenvalue(matvec, dim: int, *, seed: int = 0, tol: float = 1e-4) -> float:
    """The most negative (smallest algebraic) eigenvalue of a symmetric operator.

    ``eigsh(which="SA")``. The smallest eigenvalue of a trained network's Hessian sits at
    the edge of a bulk near 0, so Lanczos needs more products here than for the top.
    """
    start = np.random.default_rng([seed, 2]).standard_normal(dim)
    values = scipy.sparse.linalg.eigsh(_operator(matvec, dim), k=1, which="SA", v0=start,
                                       tol=tol, return_eigenvectors=False)
    return float(values[0])


def hutchinson_trace(matvec: Matvec, dim: int, probes: int = 64, *,
                     seed: int = 0) -> tuple[float, float, np.ndarray]:
    """Hutchinson's estimate of ``tr H``: the mean of ``zᵀHz`` over Rademacher ``z``.

    Returns ``(trace, standard error of the mean, the probe values (probes,))``. Each probe is
    one product; the variance is ``2 Σ_{i≠j} H_ij²`` per probe (Hutchinson 1989).
    """
    if probes < 2:
        raise ValueError(f"probes must be >= 2 (a standard error needs two), got {probes}")
    rng = np.random.default_rng([seed, 3])
    values = np.empty(probes)
    for i in range(probes):
        z = rng.integers(0, 2, dim) * 2.0 - 1.0
        values[i] = z @ matvec(z)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(probes)), values


def lanczos(matvec: Matvec, start: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` Lanczos steps from ``start`` → the tridiagonal ``(alpha (m,), beta (m-1,))``.

    Hand-written because SciPy exposes no Lanczos tridiagonalisation (ARPACK keeps ``T``
    inside); full reorthogonalisation (``m × dim`` floats, ``O(m²·dim)`` flops; no ghost
    Ritz values) since ``m`` stays below a hundred. Stops early at an invariant subspace.
    """
    basis = np.zeros((steps, len(start)))  # the Lanczos vectors, one per row
    basis[0] = start / np.linalg.norm(start)
    alpha, beta = [], []
    for j in range(steps):
        w = matvec(basis[j])
        alpha.append(float(basis[j] @ w))
        for _ in range(2):  # w ⟂ every earlier vector; twice is enough (Kahan's rule)
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        norm = float(np.linalg.norm(w))
        if j == steps - 1 or norm < 1e-10 * max(1.0, abs(alpha[-1])):
            break
        beta.append(norm)
        basis[j + 1] = w / norm
    return np.array(alpha), np.array(beta)


def spectral_density(matvec: Matvec, dim: int, *, steps: int = 64, probes: int = 1,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stochastic Lanczos quadrature: nodes and weights of the eigenvalue density.

    For each Rademacher probe ``v``, ``m = min(steps, dim)`` Lanczos steps give
    ``T = U diag(θ) Uᵀ``; the nodes are ``θ`` and the weights ``τ = U[0, :]²`` (summing to 1).
    The density ``φ(t) = (1/probes) Σ_p Σ_j τ_pj δ(t − θ_pj)`` approximates
    ``(1/dim) Σ_i δ(t − λ_i)`` (Ghorbani, Krishnan, Xiao, ICML 2019; Yao et al. 2020).

    Returns ``(nodes, weights)``, each ``(probes, m)`` (NaN-padded if a run stops early).
    Cost: ``probes · m`` products.
    """
    m = min(steps, dim)
    rng = np.random.default_rng([seed, 4])
    nodes, weights = np.full((probes, m), np.nan), np.full((probes, m), np.nan)
    for p in range(probes):
        alpha, beta = lanczos(matvec, rng.integers(0, 2, dim) * 2.0 - 1.0, m)
        theta, vectors = scipy.linalg.eigh_tridiagonal(alpha, beta)
        nodes[p, : len(theta)], weights[p, : len(theta)] = theta, vectors[0] ** 2
    return nodes, weights


def density_curve(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray,
                  sigma: float) -> np.ndarray:
    """``φ`` of ``spectral_density`` smoothed by a Gaussian of width ``sigma`` on ``grid``."""
    keep = np.isfinite(nodes)
    theta, tau = nodes[keep], weights[keep] / nodes.shape[0]
    kernel = np.exp(-0.5 * ((grid[:, None] - theta[None, :]) / sigma) ** 2)
    return kernel @ tau / (sigma * np.sqrt(2 * np.pi))


def density_on_grid(nodes: np.ndarray, weights: np.ndarray,
                    points: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """``density_curve`` on a grid spanning the nodes, smoothed 1 % of their range wide."""
    finite = nodes[np.isfinite(nodes)]
    low, high = (finite.min(), finite.max()) if finite.size else (-1.0, 1.0)
    sigma = max(high - low, 1e-12) / 100
    grid = np.linspace(low - 5 * sigma, high + 5 * sigma, points)
    return grid, density_curve(nodes, weights, grid, sigma)


def worst_case_sharpness(hessian: HessianOfLoss, rho: float, steps: int = 5, *,
                         adaptive: bool = False, eta: float = ASAM_ETA,
                         seed: int = 0) -> float:
    """``max_{‖ε‖≤ρ} L(w + ε) − L(w)`` by projected normalised-gradient ascent.

    In scaled coordinates ``δ = ε / s`` (``s = 1``, or ``|w| + η`` with ``adaptive``, ASAM's
    ``T_w``): ``δ ← Proj_{‖δ‖≤ρ}(δ + ρ · s∇L(w + sδ) / ‖s∇L‖)`` from ``δ = 0``, so the first
    step is SAM's (ASAM's) perturbation. The value is the largest increase seen at the
    iterates, a lower bound of the maximum (exact for a quadratic once the ascent has turned
    to the top eigenvector). A zero gradient is replaced by a direction drawn from ``seed``.
    Cost: ``steps + 1`` gradient evaluations; the weights are restored.
    """
    if not rho > 0 or steps < 1:
        raise ValueError(f"need rho > 0 and steps >= 1, got rho={rho}, steps={steps}")
    rng = np.random.default_rng([seed, 5])
    with hessian.restored() as w:
        scale = np.abs(w) + eta if adaptive else np.ones_like(w)
        delta = np.zeros_like(w)
        base, best = None, 0.0
        for _ in range(steps + 1):
            hessian.assign(w + scale * delta)
            value, grad = hessian.loss_and_gradient()
            if base is None:
                base = value
            best = max(best, value - base)
            direction = scale * grad
            norm = np.linalg.norm(direction)
            if not norm > 0:
                direction = rng.standard_normal(w.shape)
                norm = np.linalg.norm(direction)
            delta = delta + rho * direction / norm
            length = np.linalg.norm(delta)
            if length > rho:
                delta *= rho / length
    return float(best)


def hessian_spectrum(model: keras.Model, loss, x: np.ndarray, y: np.ndarray, k: int = 3,
                     seed: int = 0, *, probes: int = 64, rho: float = 0.05,
                     rho_steps: int = 5, adaptive: bool = False, density_steps: int = 64,
                     density_probes: int = 1, tol: float = 1e-4, batch_size: int = 256,
                     single_batch: bool = False,
                     include_regularization: bool = True) -> dict:
    """The curvature measures of ``L(w) = mean loss(y, model(x, training=False))`` (+ penalties).

    Args:
        model: a built Keras model at the weights to measure (restored on return).
        loss: a Keras loss (object, function or name).
        x, y: the examples.
        k: number of top eigenvalues.
        seed: seed of every random start and probe.
        probes: Hutchinson probes (0 = no trace).
        rho, rho_steps, adaptive: worst-case sharpness ball and ascent steps (rho 0 = none).
        density_steps, density_probes: SLQ Lanczos steps and probes (0 steps = none).
        tol: relative accuracy of the eigenvalues (ARPACK).
        batch_size, single_batch, include_regularization: see ``HessianOfLoss``.

    Returns a dict: ``top`` (``(k,)``, descending), ``min``, ``trace``, ``trace_stderr``,
    ``trace_probes``, ``sharpness_rho``, ``rho``, ``rho_steps``, ``adaptive``,
    ``density_nodes``/``density_weights`` (``(density_probes, m)``), ``dim``, and per measure
    its cost: ``products`` (Hv products; each ≈ 2 gradient evaluations), ``gradients`` and
    ``seconds``. Costs: top ≈ 20–100 products, min often several hundred, trace ``probes``
    products, sharpness ``rho_steps + 1`` gradients, density ``density_probes·density_steps``
    products.
    """
    hessian = HessianOfLoss(model, loss, x, y, batch_size=batch_size, single_batch=single_batch,
                            include_regularization=include_regularization)
    out: dict = {"dim": hessian.dim, "products": {}, "gradients": {}, "seconds": {}}

    @contextlib.contextmanager
    def cost(name):
        products, gradients, started = hessian.products, hessian.gradients, time.perf_counter()
        yield
        out["products"][name] = hessian.products - products
        out["gradients"][name] = hessian.gradients - gradients
        out["seconds"][name] = time.perf_counter() - started

    with hessian.restored():
        with cost("top"):
            out["top"] = top_eigenvalues(hessian.operator(), hessian.dim, k, seed=seed, tol=tol)
        with cost("min"):
            out["min"] = min_eigenvalue(hessian.operator(), hessian.dim, seed=seed, tol=tol)
        out["trace"] = out["trace_stderr"] = float("nan")
        if probes:
            with cost("trace"):
                out["trace"], out["trace_stderr"], _ = hutchinson_trace(
                    hessian.hvp, hessian.dim, probes, seed=seed)
        out["trace_probes"] = int(probes)
        out["sharpness_rho"] = float("nan")
        if rho > 0:
            with cost("sharpness_rho"):
                out["sharpness_rho"] = worst_case_sharpness(hessian, rho, rho_steps,
                                                            adaptive=adaptive, seed=seed)
        out.update(rho=float(rho), rho_steps=int(rho_steps), adaptive=bool(adaptive))
        out["density_nodes"] = out["density_weights"] = np.zeros((0, 0))
        if density_steps:
            with cost("density"):
                out["density_nodes"], out["density_weights"] = spectral_density(
                    hessian.hvp, hessian.dim, steps=density_steps, probes=density_probes,
                    seed=seed)
    return out
