"""The ridge Hessian in closed form, and the landscape's curvature measures on diabetes against it.

The closed form is checked against an explicit double loop and a hand value; the measures of
``training/landscape/hessian.py`` (Lanczos top and bottom eigenvalue, Hutchinson and exact
trace) are checked against the closed form on scikit-learn's diabetes (442 rows, 10 features)
with a linear Keras model: Normalization (adapted on the training rows) → Dense(1) with the
project's ridge, ``kernel_regularizer=L2(λ)``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from training.config import parse_overrides
from training.landscape.closed_form import (
    closed_form_of_model,
    condition_number,
    features_of,
    linear_head,
    linear_mse_hessian,
)
from training.landscape.small_hessian import dense_hessian, measure
from training.run.builders import build_loss, build_model, build_splits


def loop_hessian(x, l2):
    """∂²/∂θ_j∂θ_k of (1/n) Σ_i (y_i − x_i·w − b)² + λ Σ_j w_j², one entry at a time."""
    n, d = x.shape
    z = [list(row) + [1.0] for row in x]
    h = np.zeros((d + 1, d + 1))
    for j in range(d + 1):
        for k in range(d + 1):
            h[j, k] = 2.0 / n * sum(z[i][j] * z[i][k] for i in range(n))
            if j == k and j < d:
                h[j, k] += 2.0 * l2
    return h


def test_closed_form_hand_value_and_loop():
    # X = [[1], [−1]]: ZᵀZ = 2I, so H = 2I + 2λ on the kernel only
    np.testing.assert_allclose(linear_mse_hessian([[1.0], [-1.0]], 0.5), [[3.0, 0.0], [0.0, 2.0]])
    x = np.random.default_rng(0).normal(size=(13, 3)) + 0.5  # not centred: bias couples
    for l2 in (0.0, 0.01, 0.3):
        np.testing.assert_allclose(linear_mse_hessian(x, l2), loop_hessian(x, l2), rtol=1e-12)
    np.testing.assert_allclose(linear_mse_hessian(x, 0.3, bias=False), loop_hessian(x, 0.3)[:3, :3])
    # an output scale s multiplies the data term by s², not the ridge
    scaled = loop_hessian(x, 0.0) * 4.0 + 2 * 0.3 * np.diag([1.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(linear_mse_hessian(x, 0.3, scale=2.0), scaled, rtol=1e-12)
    assert condition_number([0.5, 2.0, 4.0]) == 8.0
    assert condition_number([0.0, 1.0]) == float("inf")
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        linear_mse_hessian(x, -1.0)


def test_dense_hessian_of_a_known_matrix():
    a = np.random.default_rng(1).normal(size=(6, 6))
    a = a @ a.T
    np.testing.assert_allclose(dense_hessian(lambda v: a @ v, 6), a, rtol=1e-12)


@pytest.fixture(scope="module")
def diabetes_train():
    x, y = load_diabetes(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))[:353]  # an 80 % training split
    return x[order].astype("float32"), y[order].astype("float32")


def linear_model(x_train, l2, scale=None, seed=0):
    """Normalization → Dense(1) (+ ridge) [→ Rescaling(scale, 150): target_scale's layer]."""
    keras.utils.set_random_seed(seed)
    norm = keras.layers.Normalization()
    norm.adapt(x_train)
    reg = keras.regularizers.L2(l2) if l2 else None
    layers = [keras.Input((x_train.shape[1],)), norm, keras.layers.Dense(1, kernel_regularizer=reg)]
    if scale is not None:
        layers.append(keras.layers.Rescaling(scale, 150.0))
    return keras.Sequential(layers)


@pytest.mark.parametrize("l2, scale", [(0.0, None), (0.1, None), (0.1, 3.0)])
def test_curvature_measures_equal_the_closed_form_on_diabetes(diabetes_train, l2, scale):
    x, y = diabetes_train
    model = linear_model(x, l2, scale)
    expected = closed_form_of_model(model, x, l2)
    z = features_of(model, x)
    s2 = 1.0 if scale is None else scale**2
    # standardised on these rows: the bias decouples with eigenvalue 2 s², the kernel block is
    # the essay's 2XᵀX/n + 2λI (times s² on the data term under an output scale)
    np.testing.assert_allclose(expected[:10, :10], 2 * s2 * z.T @ z / len(z) + 2 * l2 * np.eye(10))
    np.testing.assert_allclose(expected[-1], np.r_[np.zeros(10), 2.0 * s2], atol=1e-4)
    eig = np.linalg.eigvalsh(expected)
    got = measure(model, "mse", x, y, probes=64)
    assert got["dim"] == 11
    assert got["top"] == pytest.approx(eig[-1], rel=0.01)
    assert got["trace_exact"] == pytest.approx(np.trace(expected), rel=0.01)
    assert got["min"] == pytest.approx(eig[0], rel=0.01)
    assert got["condition"] == pytest.approx(condition_number(eig), rel=0.02)
    np.testing.assert_allclose(got["eigenvalues"], eig, rtol=1e-3, atol=1e-5)
    # Hutchinson with 64 probes is unbiased but not 1 %: within 4 of its standard errors
    assert abs(got["trace_hutchinson"] - np.trace(expected)) < 4 * got["trace_stderr"]
    assert got["trace_stderr"] / np.trace(expected) > 0.01  # why the exact trace is needed
    # and the ridge moves every kernel eigenvalue up by 2λ: the condition number falls
    if l2:  # (the same model's data term: λ = 0)
        plain = np.linalg.eigvalsh(closed_form_of_model(model, x, 0.0)[:10, :10])
        np.testing.assert_allclose(np.linalg.eigvalsh(expected[:10, :10]), plain + 2 * l2)


def test_a_model_that_is_not_linear_is_named(diabetes_train):
    x, _ = diabetes_train
    deep = keras.Sequential([keras.Input((10,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="trains only its last Dense layer"):
        linear_head(deep)
    two_scales = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1),
                                   keras.layers.Rescaling([1.0, 2.0])])
    with pytest.raises(ValueError, match="one scale"):
        linear_head(two_scales)
    relu = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1, activation="relu")])
    with pytest.raises(ValueError, match="activation relu"):
        linear_head(relu)


@pytest.mark.parametrize("target_scale", [True, False])
def test_the_projects_linear_model_on_diabetes(target_scale):
    # The model the trainer builds (Normalization → linear backbone → Dense [→ Rescaling]) on
    # the project's diabetes training split, measured at its initial weights (H is constant).
    config = parse_overrides(["dataset=diabetes", "model=linear", "loss=mse", "l2=0.01",
                              f"target_scale={str(target_scale).lower()}"])
    splits = build_splits(config)
    model = build_model(config, splits.x_train.shape[1:], splits.num_classes, splits)
    head = linear_head(model)
    assert (head.scale != 1.0) == target_scale
    expected = np.linalg.eigvalsh(closed_form_of_model(model, splits.x_train, 0.01))
    loss_fn = build_loss(config, splits.y_train, splits.num_classes)
    got = measure(model, loss_fn, splits.x_train, splits.y_train, probes=8)
    assert got["top"] == pytest.approx(expected[-1], rel=0.01)
    assert got["min"] == pytest.approx(expected[0], rel=0.01)
    assert got["trace_exact"] == pytest.approx(expected.sum(), rel=0.01)
