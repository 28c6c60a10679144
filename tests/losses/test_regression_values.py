"""MSE, MAE, Huber and log-cosh against Keras's built-ins and the NumPy loops, their gradients
in closed form, and sample weights: Keras's weighted mean for every regression loss, and
weighted least squares (the closed-form WLS fit is where the weighted MSE is stationary)."""

import keras
import numpy as np
import pytest
import regression_reference as ref
from batches import targets_and_predictions
from keras import ops

import losses

B = 32
# (entry, args, Keras's built-in, NumPy loop, d loss_i / d e for e = ŷ − y, per column)
CASES = [
    ("mse", {}, keras.losses.MeanSquaredError, ref.mse, lambda e: 2 * e),
    ("mae", {}, keras.losses.MeanAbsoluteError, ref.mae, np.sign),
    ("huber", {"delta": 0.5}, keras.losses.Huber, lambda y, p: ref.huber(y, p, 0.5),
     lambda e: np.clip(e, -0.5, 0.5)),
    ("huber", {"delta": 1.0}, keras.losses.Huber, lambda y, p: ref.huber(y, p, 1.0),
     lambda e: np.clip(e, -1.0, 1.0)),
    ("huber", {"delta": 3.0}, keras.losses.Huber, lambda y, p: ref.huber(y, p, 3.0),
     lambda e: np.clip(e, -3.0, 3.0)),
    ("log_cosh", {}, keras.losses.LogCosh, ref.log_cosh, np.tanh),
]
IDS = [name + "".join(f"[{k}={v}]" for k, v in args.items()) for name, args, *_ in CASES]


def numpy(x):
    return ops.convert_to_numpy(x)


def ours(name, args, **kwargs):
    return losses.spec(name).build(args) if not kwargs else losses.spec(name).cls(**args, **kwargs)


@pytest.mark.parametrize("units", [1, 3])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_the_numpy_loop(case, units, rng):
    name, args, _, loop, _ = case
    y, pred = targets_and_predictions(rng, B, units)
    got = numpy(ours(name, args, reduction="none")(y, pred))
    np.testing.assert_allclose(got, loop(y, pred), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_equals_the_keras_builtin(case, rng):
    name, args, builtin, _, _ = case
    for units in (1, 3):
        y, pred = targets_and_predictions(rng, B, units)
        y_cols = np.repeat(y[:, None], units, axis=1)  # Keras wants targets of the same shape
        weights = rng.uniform(0.0, 2.0, size=B).astype("float32")
        for reduction in ("sum_over_batch_size", "sum", "none"):
            mine, theirs = ours(name, args, reduction=reduction), builtin(**args,
                                                                        reduction=reduction)
            np.testing.assert_allclose(numpy(mine(y_cols, pred)), numpy(theirs(y_cols, pred)),
                                       rtol=1e-6)
            np.testing.assert_allclose(numpy(mine(y_cols, pred, sample_weight=weights)),
                                       numpy(theirs(y_cols, pred, sample_weight=weights)),
                                       rtol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradient_in_closed_form_kinks_included(case, rng, grad):
    name, args, _, _, slope = case
    y, pred = targets_and_predictions(rng, B, 2)
    pred[:4] = y[:4, None]  # e = 0 exactly: the kink of MAE (subgradient sign(0) = 0)
    loss = ours(name, args)
    _, g = grad(lambda x: loss(y, x), pred)
    e = pred.astype(np.float64) - y[:, None]
    np.testing.assert_allclose(g, slope(e) / pred.size, rtol=1e-5, atol=1e-7)
    assert np.all(g[:4] == 0.0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_column_of_predictions_or_a_flat_one_give_the_same_losses(case, rng):
    name, args, _, loop, _ = case
    y, pred = targets_and_predictions(rng, B, 1)
    loss = ours(name, args, reduction="none")
    for y_layout, pred_layout in [(y, pred[:, 0]), (y[:, None], pred), (y[:, None], pred[:, 0])]:
        got = numpy(loss(y_layout, pred_layout))
        assert got.shape == (B,)
        np.testing.assert_allclose(got, loop(y, pred), rtol=1e-5, atol=1e-6)


def test_hand_computed_values():
    # Errors 0.5 and −2: MSE (0.25 + 4)/2, MAE (0.5 + 2)/2, Huber δ=1 (0.125 + 1.5)/2.
    y, pred = np.array([1.0, 2.0]), np.array([[1.5], [0.0]])
    assert float(losses.MSELoss()(y, pred)) == pytest.approx(2.125, rel=1e-6)
    assert float(losses.MAELoss()(y, pred)) == pytest.approx(1.25, rel=1e-6)
    assert float(losses.HuberLoss(1.0)(y, pred)) == pytest.approx(0.8125, rel=1e-6)
    assert float(losses.LogCoshLoss()(y, pred)) == pytest.approx(
        (np.log(np.cosh(0.5)) + np.log(np.cosh(2.0))) / 2, rel=1e-6)
    # log cosh(100) = 100 − log 2 + log(1 + e^−200): exact where cosh itself overflows (e > 89).
    assert float(losses.LogCoshLoss()(np.zeros(1), np.array([[100.0]]))) == pytest.approx(
        100 - np.log(2), rel=1e-6)


REFERENCES = {
    "mse": ref.mse, "mae": ref.mae, "huber": lambda y, p: ref.huber(y, p, 1.0),
    "log_cosh": ref.log_cosh,
    "pinball": lambda y, p: ref.pinball(y, p, (0.1, 0.5, 0.9)),
    "gaussian_nll": lambda y, p: ref.gaussian_nll(y, p, 0.5, 1e-6),
}


def test_every_regression_entry_has_a_weighted_reference():
    assert sorted(REFERENCES) == losses.names("regression")


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_sample_weight_gives_keras_weighted_mean(name, rng):
    """sample_weight (B,) under Keras's "sum_over_batch_size": Σ_i w_i loss_i / B (divided by
    the batch size, not by Σ w), with loss_i from the NumPy loop."""
    spec = losses.spec(name)
    y, pred = targets_and_predictions(rng, B, losses.output_units(spec))
    if spec.output == "mean_logvar":
        pred[:, 1] = rng.uniform(-2, 2, size=B)  # log σ² in a range where the floor is idle
    weights = rng.uniform(0.0, 3.0, size=B).astype("float32")
    weights[:5] = 0.0
    shares = REFERENCES[name](y, pred)
    want = sum(w * s for w, s in zip(weights.astype(np.float64), shares, strict=True)) / B
    got = float(spec.build({})(y, pred, sample_weight=weights))
    assert got == pytest.approx(want, rel=1e-5)
    summed = float(spec.cls(reduction="sum")(y, pred, sample_weight=weights))
    assert summed == pytest.approx(want * B, rel=1e-5)


def test_weighted_mse_is_stationary_at_the_closed_form_weighted_least_squares(rng, grad):
    """The essay's weighted least squares: β_w = (XᵀWX)⁻¹XᵀWy minimises Σ w_i (y_i − x_iβ)²,
    so the gradient of MSELoss with sample_weight=w vanishes there, and not at the unweighted
    least-squares β."""
    x = np.c_[rng.normal(size=(64, 3)), np.ones(64)]
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + rng.normal(scale=0.5, size=64)
    w = rng.uniform(0.1, 4.0, size=64)
    beta_w = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w * y))
    beta_ols = np.linalg.lstsq(x, y, rcond=None)[0]
    loss = losses.MSELoss()
    xs, ys, ws = x.astype("float32"), y.astype("float32"), w.astype("float32")

    def weighted(beta):
        return loss(ys, ops.matmul(xs, beta), sample_weight=ws)

    _, at_wls = grad(weighted, beta_w.astype("float32")[:, None])
    _, at_ols = grad(weighted, beta_ols.astype("float32")[:, None])
    assert np.abs(at_wls).max() < 1e-4
    assert np.abs(at_ols).max() > 1e-2


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_huber_delta_must_be_positive(bad):
    with pytest.raises(losses.LossArgError, match=rf"delta={bad!r} is out of range; valid: > 0"):
        losses.HuberLoss(delta=bad)
    with pytest.raises(losses.LossArgError, match=r"delta=.* is out of range; valid: > 0"):
        losses.spec("huber").arg("delta").parse(str(bad))
