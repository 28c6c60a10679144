"""PinballLoss against the NumPy loop, its gradient on both sides of the kink and at it
(convention: ½ − τ), τ = ½ as half of MAE, the non-crossing penalty, and bad quantiles."""

import keras
import numpy as np
import pytest
import regression_reference as ref
from batches import targets_and_predictions
from keras import ops

import losses
from losses import PinballLoss

B = 24
LEVELS = [(0.5,), (0.1, 0.5, 0.9), (0.05, 0.25, 0.5, 0.75, 0.95)]


def numpy(x):
    return ops.convert_to_numpy(x)


@pytest.mark.parametrize("crossing", [0.0, 0.7])
@pytest.mark.parametrize("quantiles", LEVELS, ids=str)
def test_matches_the_numpy_loop(quantiles, crossing, rng):
    y, pred = targets_and_predictions(rng, B, len(quantiles))  # columns cross at random
    got = numpy(PinballLoss(quantiles, crossing, reduction="none")(y, pred))
    np.testing.assert_allclose(got, ref.pinball(y, pred, quantiles, crossing), rtol=1e-6,
                               atol=1e-6)


def test_equals_the_plain_keras_ops_one_liner(rng):
    """The benchmark's baseline: mean over τ of max(τu, (τ − 1)u)."""
    q = np.array([0.1, 0.5, 0.9], "float32")
    y, pred = targets_and_predictions(rng, B, 3)
    u = y[:, None] - pred
    want = ops.mean(ops.maximum(q * u, (q - 1) * u))
    np.testing.assert_allclose(float(PinballLoss()(y, pred)), float(want), rtol=1e-6)


def test_gradient_on_both_sides_of_the_kink_and_at_it(grad):
    """d loss / d ŷ_τ = −τ below the target, 1 − τ above, ½ − τ at ŷ = y (the middle of the
    subdifferential [−τ, 1 − τ]), each over B·Q for the means."""
    q = (0.1, 0.5, 0.9)
    y = np.array([1.0, 1.0, 1.0], "float32")
    pred = np.array([[0.0] * 3, [2.0] * 3, [1.0] * 3], "float32")  # below, above, at y
    _, g = grad(lambda x: PinballLoss(q)(y, x), pred)
    tau = np.array(q)
    want = np.stack([-tau, 1 - tau, 0.5 - tau]) / pred.size
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-9)


def test_median_is_half_of_mae_gradient_included(rng, grad):
    y, pred = targets_and_predictions(rng, B, 1)
    pred[:3, 0] = y[:3]  # at the kink both give 0
    median, mae = PinballLoss((0.5,)), losses.MAELoss()
    v_median, g_median = grad(lambda x: median(y, x), pred)
    v_mae, g_mae = grad(lambda x: mae(y, x), pred)
    np.testing.assert_allclose(v_median, 0.5 * v_mae, rtol=1e-6)
    np.testing.assert_allclose(g_median, 0.5 * g_mae, rtol=1e-6, atol=1e-9)


def test_minimiser_of_a_constant_prediction_is_the_empirical_quantile(rng):
    """Over candidate constants c (every sample value), the mean pinball loss of τ is
    smallest at the ⌈τn⌉-th smallest target (τn not an integer: the unique τ-quantile)."""
    y = rng.standard_exponential(size=101).astype("float32")  # skewed: quantiles differ
    candidates = np.sort(y)
    # Every candidate against every target at once: (n targets × n candidates) rows.
    pred = np.tile(candidates, len(y))[:, None]
    targets = np.repeat(y, len(candidates))
    for tau in (0.1, 0.5, 0.9):
        per = numpy(PinballLoss((tau,), reduction="none")(targets, pred))
        best = candidates[np.argmin(per.reshape(len(y), len(candidates)).mean(axis=0))]
        assert best == candidates[int(np.ceil(tau * len(y))) - 1], (tau, best)


def test_crossing_penalty_is_zero_in_order_and_charges_each_crossing(grad):
    q = (0.1, 0.5, 0.9)
    y = np.zeros(2, "float32")
    ordered = np.array([[-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], "float32")
    np.testing.assert_allclose(numpy(PinballLoss(q, 5.0, reduction="none")(y, ordered)),
                               numpy(PinballLoss(q, 0.0, reduction="none")(y, ordered)))
    crossed = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 1.0]], "float32")  # crossings 1+1, 1
    plain = numpy(PinballLoss(q, 0.0, reduction="none")(y, crossed))
    penalised = numpy(PinballLoss(q, 0.5, reduction="none")(y, crossed))
    np.testing.assert_allclose(penalised - plain, [0.5 * 2.0, 0.5 * 1.0], rtol=1e-6)
    # The penalty pushes the lower column down and the upper one up, by λ per crossing.
    _, g_plain = grad(lambda x: ops.sum(PinballLoss(q, 0.0, reduction="none")(y, x)), crossed)
    _, g_pen = grad(lambda x: ops.sum(PinballLoss(q, 0.5, reduction="none")(y, x)), crossed)
    np.testing.assert_allclose(g_pen - g_plain, [[0.5, 0.0, -0.5], [0.0, 0.5, -0.5]],
                               atol=1e-6)


def test_output_units_follow_the_quantiles():
    spec = losses.spec("pinball")
    assert spec.output == "quantiles"
    assert losses.output_units(spec) == 3
    assert losses.output_units(spec, {"quantiles": [0.05, 0.5, 0.95, 0.99]}) == 4


def test_a_head_of_the_wrong_width_is_an_error():
    with pytest.raises(ValueError, match="pinball reads 3 output columns per sample; the model "
                       "gives 2"):
        PinballLoss()(np.zeros(4), np.zeros((4, 2)))


@pytest.mark.parametrize(("raw", "needle"), [
    ("0,0.5", "quantiles=0,0.5 has 0 out of range"),
    ("0.5,1", "quantiles=0.5,1 has 1 out of range"),
    ("-0.1", "quantiles=-0.1 has -0.1 out of range"),
    ("0.9,0.1", "quantiles=0.9,0.1 is not sorted (0.9 before 0.1)"),
    ("0.1,0.5,0.5", "quantiles=0.1,0.5,0.5 repeats 0.5"),
    ("0.1,x", "quantiles='0.1,x' is not valid"),
])
def test_bad_quantiles_name_the_value_and_the_valid_range(raw, needle):
    valid = "valid: comma-separated numbers, each > 0 and < 1, strictly increasing"
    with pytest.raises(losses.LossArgError) as parsed:
        losses.spec("pinball").arg("quantiles").parse(raw)
    assert needle in str(parsed.value) and valid in str(parsed.value)
    if "not valid" not in needle:  # the same message from the class itself
        with pytest.raises(losses.LossArgError) as built:
            PinballLoss(quantiles=[float(v) for v in raw.split(",")])
        assert str(built.value) == str(parsed.value)


def test_quantiles_parse_from_the_command_line_and_from_a_logged_value():
    arg = losses.spec("pinball").arg("quantiles")
    assert arg.parse("0.1,0.5,0.9") == (0.1, 0.5, 0.9)
    assert arg.parse("(0.1, 0.5, 0.9)") == arg.parse("[0.1,0.5,0.9]") == (0.1, 0.5, 0.9)
    assert arg.check([0.25, 0.75]) == (0.25, 0.75)  # config.json gives a list
    assert arg.show((0.1, 0.5, 0.9)) == "0.1,0.5,0.9"
    with pytest.raises(losses.LossArgError, match="crossing=-1.0 is out of range"):
        PinballLoss(crossing=-1.0)


def test_config_survives_serialization_with_its_tuple():
    loss = PinballLoss((0.2, 0.8), 0.3)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert restored.quantiles == (0.2, 0.8) and restored.crossing == 0.3
