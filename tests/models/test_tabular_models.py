"""mlp and linear on feature rows, and the regression head: its width follows the loss's
output, its Normalization holds the training rows' statistics (the model takes raw rows),
its Rescaling maps standardised predictions back to target units; an image backbone takes a
regression head too. Outputs are recomputed by hand from the layers' weights."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import models
from models import backbone_of, catalog, inference_model

STATS = (np.array([1.0, -2.0, 0.0], np.float32), np.array([4.0, 0.25, 1.0], np.float32))


def _weights(layer):
    return [np.asarray(keras.ops.convert_to_numpy(w), np.float64) for w in layer.weights]


def test_linear_is_w_dot_standardised_x_plus_b_rescaled():
    model = models.build("linear", (3,), 0, output="value", units=1, feature_stats=STATS,
                         target_stats=(100.0, 20.0), l2=0.1)
    assert backbone_of(model).count_params() == 0
    kernel, bias = _weights(model.get_layer("prediction"))
    x = np.array([[3.0, -1.0, 5.0], [1.0, -2.0, 0.0]], np.float32)
    for row, got in zip(x, np.asarray(model(x)), strict=True):
        z = [(row[j] - STATS[0][j]) / math.sqrt(STATS[1][j]) for j in range(3)]
        want = 100.0 + 20.0 * (sum(z[j] * kernel[j, 0] for j in range(3)) + bias[0])
        assert got[0] == pytest.approx(want, rel=1e-5)
    # the ridge term λ‖w‖² on the head's kernel only
    penalty = float(sum(keras.ops.convert_to_numpy(t) for t in model.losses))
    assert penalty == pytest.approx(0.1 * float(np.sum(kernel**2)), rel=1e-5)


@pytest.mark.parametrize(("output", "units"), [("value", 1), ("quantiles", 3),
                                               ("mean_logvar", 2)])
def test_head_width_and_mean_logvar_scale(output, units):
    model = models.build("mlp", (3,), 0, output=output, units=units, feature_stats=STATS,
                         target_stats=(10.0, 2.0), options={"hidden": (8, 4), "dropout": 0.2})
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    out = np.asarray(model(x))
    assert out.shape == (5, units)
    raw = keras.Model(model.input, model.get_layer("prediction").output)(x)
    raw = np.asarray(raw, np.float64)
    if output == "mean_logvar":  # mean 2z + 10, log-variance z + 2 ln 2
        want = np.stack([2 * raw[:, 0] + 10, raw[:, 1] + 2 * math.log(2.0)], axis=1)
    else:
        want = 2 * raw + 10
    np.testing.assert_allclose(out, want, rtol=1e-5)
    assert [layer.name for layer in backbone_of(model).layers].count("dropout1") == 1


def test_mlp_size_matches_the_catalogue_and_hidden():
    entry = catalog.find("mlp")
    at_min = models.backbone("mlp", (1, 1, 3))  # flattened 3 inputs
    assert at_min.count_params() == entry.params == 256 * 4 + 256 * 257
    assert tuple(at_min.output.shape) == (None, entry.features)
    narrow = models.backbone("mlp", (10,), options={"hidden": (16,)})
    assert narrow.count_params() == 16 * 11
    assert models.backbone("linear", (1, 1, 3)).output.shape[-1] == catalog.find("linear").features


def test_image_backbone_takes_a_regression_head_and_rows_need_a_table_model():
    model = models.build("small_cnn", (8, 8, 1), 0, output="quantiles", units=3,
                         target_stats=(0.5, 1.5))
    assert model.output.shape == (None, 3)
    with pytest.raises(models.ModelError, match=r"takes images.*feature rows.*mlp, linear"):
        models.build("small_cnn", (10,), 0, output="value", units=1)


def test_logged_model_takes_raw_rows():
    model = models.build("mlp", (3,), 0, output="value", units=1, feature_stats=STATS,
                         target_stats=(5.0, 3.0), options={"hidden": (4,)})
    copy = inference_model(model, drop_proxies=False)
    x = np.array([[100.0, -50.0, 3.0]], np.float32)
    np.testing.assert_allclose(np.asarray(copy(x)), np.asarray(model(x)), rtol=1e-6)
