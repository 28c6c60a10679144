"""Loss along a line and on a grid, against closed forms for a linear model with MSE.

For ``pred = x @ W + b`` and ``L = mean((pred - y)^2)`` the residual is affine in the weights,
so along ``(1-a)*start + a*end`` it is ``r0 + a*(r1 - r0)`` and

    L(a) = mean(r0^2) + 2a*mean(r0*(r1 - r0)) + a^2*mean((r1 - r0)^2),

and on ``center + s*d1 + t*d2`` (``u_k`` = the model's output change per unit of ``d_k``):

    L(s, t) = mean((rc + s*u1 + t*u2)^2).
"""

import keras
import numpy as np
import pytest

from training.landscape import LossOnData, line_profile, sharpness, surface
from training.landscape.evaluate import ring_angles


def _linear_model(n_in=3, regularizer=None):
    dense = keras.layers.Dense(1, kernel_regularizer=regularizer)
    return keras.Sequential([keras.Input((n_in,)), dense])


def _point(rng, n_in=3):
    return [rng.normal(size=(n_in, 1)).astype(np.float32), rng.normal(size=(1,)).astype(np.float32)]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3)).astype(np.float32)
    y = rng.normal(size=(10, 1)).astype(np.float32)
    return x, y


def _residual(x, y, weights):
    kernel, bias = (np.asarray(w, np.float64) for w in weights)
    return (x.astype(np.float64) @ kernel + bias - y.astype(np.float64)).ravel()


def test_line_profile_is_the_closed_form_quadratic(data):
    x, y = data
    rng = np.random.default_rng(1)
    start, end = _point(rng), _point(rng)
    alphas = np.linspace(-0.5, 1.5, 9)
    got = line_profile(_linear_model(), "mse", start, end, x, y, alphas, batch_size=3)
    r0, r1 = _residual(x, y, start), _residual(x, y, end)
    c, b, a = np.mean(r0**2), 2 * np.mean(r0 * (r1 - r0)), np.mean((r1 - r0) ** 2)
    np.testing.assert_allclose(got, c + b * alphas + a * alphas**2, rtol=1e-5)


def test_line_profile_equals_an_explicit_loop(data):
    x, y = data
    rng = np.random.default_rng(2)
    start, end = _point(rng), _point(rng)
    alphas = [0.0, 0.25, 1.0, 2.0]
    want = []
    for alpha in alphas:
        point = [(1 - alpha) * s + alpha * e for s, e in zip(start, end, strict=True)]
        residual = _residual(x, y, point)
        want.append(sum(r * r for r in residual) / len(residual))
    got = line_profile(_linear_model(), keras.losses.MeanSquaredError(), start, end, x, y, alphas)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_surface_is_the_closed_form(data):
    x, y = data
    rng = np.random.default_rng(3)
    center, d1, d2 = _point(rng), _point(rng), _point(rng)
    coords = np.linspace(-1, 1, 5)
    got = surface(_linear_model(), "mse", center, d1, d2, x, y, coords, batch_size=4)
    rc = _residual(x, y, center)
    u1 = (x.astype(np.float64) @ d1[0] + d1[1]).ravel()  # output change per unit step along d1
    u2 = (x.astype(np.float64) @ d2[0] + d2[1]).ravel()
    for i, s in enumerate(coords):
        for j, t in enumerate(coords):
            assert got[i, j] == pytest.approx(np.mean((rc + s * u1 + t * u2) ** 2), rel=1e-5)


def test_weights_are_restored(data):
    x, y = data
    model = _linear_model()
    before = model.get_weights()
    rng = np.random.default_rng(4)
    line_profile(model, "mse", _point(rng), _point(rng), x, y, [0.0, 1.0])
    surface(model, "mse", _point(rng), _point(rng), _point(rng), x, y, [-1.0, 0.0, 1.0])
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_batches_are_weighted_by_size_and_single_batch_sees_everything(data):
    x, y = data
    model = _linear_model()
    weights = _point(np.random.default_rng(5))

    def worst(y_true, y_pred):  # not a mean over examples: depends on the batch composition
        return keras.ops.max(keras.ops.square(y_true - y_pred))

    squared = _residual(x, y, weights) ** 2
    batched = LossOnData(model, worst, x, y, batch_size=4)(weights)  # batches of 4, 4, 2
    want = (4 * squared[:4].max() + 4 * squared[4:8].max() + 2 * squared[8:].max()) / 10
    assert batched == pytest.approx(want, rel=1e-5)
    single = LossOnData(model, worst, x, y, batch_size=4, single_batch=True)(weights)
    assert single == pytest.approx(squared.max(), rel=1e-5)


def test_weight_penalties_are_part_of_the_loss(data):
    x, y = data
    model = _linear_model(regularizer=keras.regularizers.L2(0.1))
    weights = _point(np.random.default_rng(6))
    want = np.mean(_residual(x, y, weights) ** 2) + 0.1 * np.sum(weights[0].astype(np.float64) ** 2)
    assert LossOnData(model, "mse", x, y)(weights) == pytest.approx(want, rel=1e-5)
    plain = LossOnData(model, "mse", x, y, include_regularization=False)(weights)
    assert plain == pytest.approx(np.mean(_residual(x, y, weights) ** 2), rel=1e-5)


def test_sharpness_is_ring_mean_minus_centre():
    assert sharpness(np.array([1.0, 2.0, 3.0, 6.0]), 1.5) == pytest.approx(1.5)
    np.testing.assert_allclose(ring_angles(4), [0, np.pi / 2, np.pi, 3 * np.pi / 2])


def test_bad_arguments_name_the_value(data):
    x, y = data
    with pytest.raises(ValueError, match="3 directions, got 2"):
        ring_angles(2)
    with pytest.raises(ValueError, match="10 and 9"):
        LossOnData(_linear_model(), "mse", x, y[:9])
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        LossOnData(_linear_model(), "mse", x, y, batch_size=0)
