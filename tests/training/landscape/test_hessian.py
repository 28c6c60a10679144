"""Curvature measures against slow, obvious references: finite differences of a gradient the
test computes itself, dense Hessians and ``np.linalg.eigvalsh``, matrices with known spectra,
and a brute-force search of the ρ-ball. Models are float64, so the references are exact to
~1e-8."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from training.landscape import hessian_spectrum
from training.landscape.hessian import (
    HessianOfLoss,
    density_curve,
    hutchinson_trace,
    min_eigenvalue,
    spectral_density,
    top_eigenvalues,
    worst_case_sharpness,
)


def _ce(y, logits):
    return keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)


def _mlp(seed=0):
    """6 → 16 (tanh, L2 1e-3 on the kernel) → 5 logits: 197 float64 parameters."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((6,), dtype="float64"),
        keras.layers.Dense(16, activation="tanh", dtype="float64",
                           kernel_regularizer=keras.regularizers.L2(1e-3)),
        keras.layers.Dense(5, dtype="float64"),
    ])


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    y = rng.integers(0, 5, 40)
    model = _mlp()
    return model, x, y


def _reference_gradient(model, x, y):
    """∇ of mean CE + penalties at the model's weights, flat float64 (the test's own tape)."""
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(_ce(y, model(x, training=False))) + tf.add_n(model.losses)
    return np.concatenate([np.ravel(g) for g in tape.gradient(value, model.trainable_variables)])


def _shift(model, flat):
    """Add a flat vector to the trainable variables."""
    offset = 0
    for v in model.trainable_variables:
        size = int(np.prod(v.shape))
        v.assign(v.numpy() + flat[offset : offset + size].reshape(v.shape))
        offset += size


def _fd_hessian_column(model, x, y, v, h=1e-4):
    """(∇L(w + hv) − ∇L(w − hv)) / 2h: error O(h²) ≈ 1e-8 relative in float64."""
    _shift(model, h * v)
    plus = _reference_gradient(model, x, y)
    _shift(model, -2 * h * v)
    minus = _reference_gradient(model, x, y)
    _shift(model, h * v)
    return (plus - minus) / (2 * h)


@pytest.fixture(scope="module")
def dense(problem):
    """The dense Hessian, column by column from finite differences, symmetrised."""
    model, x, y = problem
    n = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    columns = [_fd_hessian_column(model, x, y, e) for e in np.eye(n)]
    matrix = np.stack(columns, axis=1)
    return (matrix + matrix.T) / 2


def test_hvp_equals_finite_differences_of_the_gradient(problem):
    model, x, y = problem
    hessian = HessianOfLoss(model, _ce, x, y, batch_size=16)  # 3 batches, weighted 16/16/8
    assert hessian.dim == 197
    for seed in range(3):
        v = np.random.default_rng(seed).normal(size=hessian.dim)
        np.testing.assert_allclose(hessian.hvp(v), _fd_hessian_column(model, x, y, v),
                                   rtol=1e-3, atol=1e-3 * np.abs(hessian.hvp(v)).max())
    value, grad = hessian.loss_and_gradient()
    np.testing.assert_allclose(grad, _reference_gradient(model, x, y), rtol=1e-10, atol=1e-12)


def test_spectrum_of_a_tiny_model_matches_the_dense_hessian(problem, dense):
    model, x, y = problem
    before = [v.numpy().copy() for v in model.trainable_variables]
    eigenvalues = np.linalg.eigvalsh(dense)  # ascending
    assert eigenvalues[0] < 0  # a saddle at random init: the minimum is worth measuring
    result = hessian_spectrum(model, _ce, x, y, k=3, seed=0, probes=64, density_steps=20)
    np.testing.assert_allclose(result["top"], eigenvalues[::-1][:3], rtol=1e-2)
    assert result["min"] == pytest.approx(eigenvalues[0], rel=1e-2)
    trace = np.trace(dense)
    assert abs(result["trace"] - trace) < 3 * result["trace_stderr"]
    assert result["trace_probes"] == 64 and result["products"]["trace"] == 64
    assert result["density_nodes"].shape == (1, 20)
    for a, b in zip(before, model.trainable_variables, strict=True):
        np.testing.assert_array_equal(a, b.numpy())  # weights restored
    again = hessian_spectrum(model, _ce, x, y, k=3, seed=0, probes=64, density_steps=20)
    assert again["trace"] == result["trace"]  # a pure function of weights, subset and seed
    np.testing.assert_array_equal(again["top"], result["top"])


def _known(eigenvalues, seed=0):
    """Q diag(λ) Qᵀ with a random orthogonal Q."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(eigenvalues),) * 2))
    return q @ np.diag(eigenvalues) @ q.T


def test_eigen_solver_converges_to_known_eigenvalues():
    eigenvalues = np.concatenate([[10.0, 7.0, 5.0], np.linspace(-0.5, 2.0, 60), [-3.0]])
    matrix = _known(eigenvalues)
    np.testing.assert_allclose(top_eigenvalues(lambda v: matrix @ v, 64, 3), [10, 7, 5],
                               rtol=1e-6)
    assert min_eigenvalue(lambda v: matrix @ v, 64) == pytest.approx(-3.0, rel=1e-6)
    with pytest.raises(ValueError, match="k must be in"):
        top_eigenvalues(lambda v: matrix @ v, 64, 64)


def test_hutchinson_on_a_known_matrix_and_its_standard_error():
    matrix = _known(np.linspace(-1, 3, 30))
    trace, stderr, values = hutchinson_trace(lambda v: matrix @ v, 30, 400, seed=1)
    assert abs(trace - np.trace(matrix)) < 3 * stderr
    # Rademacher probes: Var(zᵀAz) = 2 Σ_{i≠j} A_ij²
    variance = 2 * (np.sum(matrix**2) - np.sum(np.diag(matrix) ** 2))
    assert stderr == pytest.approx(np.sqrt(variance / 400), rel=0.2)
    assert values.shape == (400,)
    diagonal = np.diag(np.arange(1.0, 11.0))  # zᵀDz = tr D for every ±1 probe: no error
    assert hutchinson_trace(lambda v: diagonal @ v, 10, 5) [:2] == (55.0, 0.0)


def test_slq_finds_the_distinct_eigenvalues_and_their_shares():
    # 4 distinct eigenvalues: Lanczos stops after 4 steps, its nodes are exactly those, and the
    # weights average to multiplicity / n over probes.
    eigenvalues = np.repeat([-1.0, 0.5, 2.0, 6.0], [10, 20, 5, 5])
    matrix = _known(eigenvalues, seed=2)
    nodes, weights = spectral_density(lambda v: matrix @ v, 40, steps=30, probes=200, seed=0)
    assert np.isnan(nodes[:, 4:]).all()
    np.testing.assert_allclose(nodes[:, :4], np.tile([-1.0, 0.5, 2.0, 6.0], (200, 1)),
                               atol=1e-8)
    np.testing.assert_allclose(np.nansum(weights, axis=1), 1.0)
    np.testing.assert_allclose(weights[:, :4].mean(axis=0), [0.25, 0.5, 0.125, 0.125],
                               atol=0.03)
    grid = np.linspace(-4, 9, 2001)
    curve = density_curve(nodes, weights, grid, sigma=0.1)
    assert np.trapezoid(curve, grid) == pytest.approx(1.0, rel=1e-3)


def _quadratic_problem():
    """A 2-parameter least-squares model: L(w) = mean((Xw − y)²), an exact quadratic."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 2)) * [1.0, 0.4]
    y = rng.normal(size=(20, 1))
    model = keras.Sequential([keras.Input((2,), dtype="float64"),
                              keras.layers.Dense(1, use_bias=False, dtype="float64")])
    model.set_weights([np.array([[0.7], [-1.2]])])
    return model, x, y


def _brute_force_max(x, y, w, rho, scale):
    """max over ε = scale·δ, ‖δ‖ ≤ ρ, of L(w + ε) − L(w), on a fine polar grid."""
    radii = np.linspace(0, rho, 201)
    angles = np.linspace(0, 2 * np.pi, 3601)
    delta = np.stack([np.outer(radii, np.cos(angles)), np.outer(radii, np.sin(angles))], -1)
    points = w + scale * delta.reshape(-1, 2)
    losses = np.mean((points @ x.T - y.ravel()) ** 2, axis=1)
    return losses.max() - np.mean((x @ w - y.ravel()) ** 2)


@pytest.mark.parametrize("adaptive", [False, True])
def test_worst_case_sharpness_reaches_the_brute_force_maximum(adaptive):
    model, x, y = _quadratic_problem()
    w = model.get_weights()[0].ravel()
    scale = np.abs(w) + 0.01 if adaptive else np.ones(2)
    want = _brute_force_max(x, y, w, 0.3, scale)
    got = worst_case_sharpness(HessianOfLoss(model, "mse", x, y), 0.3, 20, adaptive=adaptive)
    assert want * 0.999 <= got <= want * (1 + 1e-6)
    np.testing.assert_array_equal(model.get_weights()[0].ravel(), w)
