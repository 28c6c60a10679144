"""The curvature of a run, end to end through real training (metrics, figure, every E epochs),
and per class against dense Hessians from TensorFlow's own Jacobian (``tape.jacobian``)."""

import types

import keras
import mlflow
import numpy as np
import pytest
import tensorflow as tf

from training.landscape.curvature import CurvatureEvery, per_class_curvature
from training.landscape.tracking import log_per_class_curvature


def _dense_hessian(model, loss_fn, x, y):
    """The Hessian of the mean loss by the Jacobian of the gradient, ``(n, n)``."""
    variables = model.trainable_variables
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            value = tf.reduce_mean(loss_fn(y, model(x, training=False)))
        flat = tf.concat([tf.reshape(g, [-1]) for g in inner.gradient(value, variables)], 0)
    blocks = outer.jacobian(flat, variables)
    return np.concatenate([np.reshape(b, (flat.shape[0], -1)) for b in blocks], axis=1)


def test_per_class_curvature_matches_dense_hessians_of_each_class(mlflow_store):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,), dtype="float64"),
                              keras.layers.Dense(6, activation="tanh", dtype="float64"),
                              keras.layers.Dense(3, dtype="float64")])

    def ce(y, logits):
        return keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 4)), np.repeat([0, 1, 2], [30, 20, 10])
    got = per_class_curvature(model, ce, x, y, 4, examples=12, seed=0)  # class 3 is empty
    for c in range(3):
        index = np.random.default_rng([0, c]).permutation(np.flatnonzero(y == c))[:12]
        eigenvalues = np.linalg.eigvalsh(_dense_hessian(model, ce, x[index], y[index]))
        assert got["top"][c] == pytest.approx(eigenvalues[-1], rel=1e-2)
        assert got["min"][c] == pytest.approx(eigenvalues[0], rel=1e-2)
    assert np.isnan(got["top"][3]) and np.isnan(got["min"][3])
    np.testing.assert_array_equal(got["examples"], [12, 12, 10, 0])
    with mlflow.start_run() as run:
        log_per_class_curvature(got, np.array([30, 20, 10, 0]), ["a", "b", "c", "d"], title="t")
    paths = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "landscape")}
    assert {"landscape/per_class_curvature.png", "landscape/per_class_curvature.json"} <= paths


@pytest.mark.slow
def test_a_run_logs_its_curvature(mlflow_store, tiny):
    from training.run.trainer import train

    # Per class and every E epochs are tested on a small model below: on this 288k-parameter
    # CNN, 10 digits classes cost ~80 s, one more measure ~20 s.
    config = tiny(curvature=True, epochs=2,
                  landscape_examples=32, curvature_k=2, curvature_probes=4, sharpness_steps=2)
    run_id = train(config, evaluate_test=False, log_model=False)["run_id"]
    client = mlflow.MlflowClient()
    metrics = client.get_run(run_id).data.metrics
    for name in ("hessian_top1", "hessian_top2", "hessian_min", "hessian_trace",
                 "hessian_trace_stderr", "sharpness_rho", "curvature_seconds"):
        assert np.isfinite(metrics[f"landscape/{name}"]), name
    assert metrics["landscape/hessian_top1"] >= metrics["landscape/hessian_top2"]
    assert metrics["landscape/hessian_min"] <= metrics["landscape/hessian_top2"]
    assert metrics["landscape/hessian_trace_probes"] == 4
    assert metrics["landscape/sharpness_rho_radius"] == 0.05
    assert metrics["landscape/sharpness_rho_steps"] == 2
    steps = [m.step for m in client.get_metric_history(run_id, "landscape/hessian_top1")]
    assert steps == [2]  # at the epochs trained
    paths = {a.path for a in client.list_artifacts(run_id, "landscape")}
    assert {"landscape/spectral_density.png", "landscape/spectral_density.npz"} <= paths


def test_curvature_every_e_epochs_logs_at_step_epoch_and_leaves_the_last_to_the_end(mlflow_store):
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(2)])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 3)).astype("float32"), rng.integers(0, 2, 20)
    config = types.SimpleNamespace(curvature_every=2, epochs=7, landscape_examples=20,
                                   curvature_k=1, curvature_probes=2, sharpness_rho=0.05,
                                   sharpness_steps=1, sharpness_adaptive=False,
                                   task="classification")
    callback = CurvatureEvery(config, keras.losses.SparseCategoricalCrossentropy(True), x, y)
    callback.set_model(model)
    with mlflow.start_run() as run:
        for epoch in range(7):
            callback.on_epoch_end(epoch)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "landscape/hessian_min")
    assert [m.step for m in history] == [2, 4, 6]
