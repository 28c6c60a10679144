"""SAM and ASAM steps against hand-computed updates on a quadratic (float32, mixed float16,
and mirrored over 2 logical CPUs, where each replica perturbs with its own gradient), and one
run end to end."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO_ROOT
from training.run.sam import perturbation, use_sam


def _problem():
    """L(w) = mean((Xw + b − y)²): a quadratic with Hessian 2[X 1]ᵀ[X 1]/n."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    return x, y


def _model(weights):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.set_weights(weights)
    return model


def _one_step(model, x, y, lr, optimizer=None):
    model.compile(optimizer=optimizer or keras.optimizers.SGD(lr), loss="mse")
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    return np.concatenate([w.ravel() for w in model.get_weights()])


def _gradient(a, y, w):
    """∇ mean((Aw − y)²) = 2Aᵀ(Aw − y)/n, in float64."""
    return 2 * a.T @ (a @ w - y.ravel()) / len(a)


@pytest.mark.parametrize("adaptive", [False, True])
def test_one_step_equals_the_hand_computed_update(adaptive):
    x, y = _problem()
    kernel, bias = np.array([[0.5], [-1.0], [2.0]], np.float32), np.array([0.3], np.float32)
    rho, lr, eta = 0.1, 0.05, 0.01
    model = use_sam(_model([kernel, bias]), rho, adaptive=adaptive, eta=eta)
    got = _one_step(model, x, y, lr)
    a = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
    w = np.concatenate([kernel.ravel(), bias]).astype(np.float64)
    g = _gradient(a, y, w)
    t = np.abs(w) + eta if adaptive else np.ones_like(w)
    epsilon = rho * t**2 * g / np.linalg.norm(t * g)
    hessian = 2 * a.T @ a / len(a)  # exact: the gradient at w + ε is g + Hε
    np.testing.assert_allclose(_gradient(a, y, w + epsilon), g + hessian @ epsilon, rtol=1e-10)
    np.testing.assert_allclose(got, w - lr * (g + hessian @ epsilon), rtol=1e-5, atol=1e-6)


def _sam_reference(a, y, w, rho, lr, parts=1):
    """One SAM step in float64 with the batch split into `parts` equal replica shares: each
    share perturbs with its own gradient, and the descent gradients are averaged."""
    descent = np.zeros_like(w)
    for a_r, y_r in zip(np.split(a, parts), np.split(y, parts), strict=True):
        g = _gradient(a_r, y_r, w)
        descent += _gradient(a_r, y_r, w + rho * g / np.linalg.norm(g)) / parts
    return w - lr * descent


def test_one_step_under_mixed_float16_matches_the_hand_computed_update():
    """The float16 forward pass, Keras's loss scaling (a LossScaleOptimizer) and SAM's ε from
    the scaled gradient (the scale cancels in g/‖g‖): the step agrees with float64 to float16's precision."""
    x, y = _problem()
    kernel, bias = np.array([[0.5], [-1.0], [2.0]], np.float32), np.array([0.3], np.float32)
    rho, lr = 0.1, 0.05
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = use_sam(_model([kernel, bias]), rho)
        assert model.layers[-1].compute_dtype == "float16"
        # Keras's initial scale 2^15 overflows float16 on this first step, which the optimiser
        # then skips (SAM too: ε = 0); a scale of 2^4 takes it.
        scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(lr), initial_scale=16)
        got = _one_step(model, x, y, lr, scaled)
    finally:
        keras.config.set_dtype_policy("float32")
    a = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
    w = np.concatenate([kernel.ravel(), bias]).astype(np.float64)
    want = _sam_reference(a, y, w, rho, lr)
    plain = w - lr * _gradient(a, y, w)
    np.testing.assert_allclose(got, want, atol=3e-3)
    assert np.abs(got - plain).max() > 10 * np.abs(got - want).max()  # SAM, not plain GD


def test_an_overflowing_gradient_is_not_perturbed():
    weights = [tf.ones((2, 2)), tf.ones(2)]
    for bad in (np.inf, np.nan):
        gradients = [tf.constant([[1.0, bad], [0.0, 1.0]]), tf.ones(2)]
        for adaptive in (False, True):
            epsilon = perturbation(gradients, weights, 0.05, adaptive=adaptive)
            assert all(np.array_equal(e.numpy(), np.zeros_like(w)) for e, w in
                       zip(epsilon, weights, strict=True))
    zero = perturbation([tf.zeros((2, 2)), tf.zeros(2)], weights, 0.05)
    assert all(not e.numpy().any() for e in zero)


# A fresh interpreter: the CPU split into 2 logical devices before TensorFlow starts.
MIRRORED_SAM = r"""
import json, sys
import keras, numpy as np, tensorflow as tf
from training.run.sam import use_sam
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(
    ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice())
x, y, kernel, bias = (np.asarray(v, np.float32) for v in json.loads(sys.stdin.read()))
with strategy.scope():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.set_weights([kernel, bias])
    use_sam(model, 0.1)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                  "weights": np.concatenate([w.ravel() for w in model.get_weights()]).tolist()}))
"""


def test_mirrored_sam_perturbs_each_replica_with_its_own_gradient():
    """m-sharpness with m = the per-replica batch: replica r (the r-th half of the batch)
    takes ε_r from its own gradient; the descent gradients are averaged across replicas."""
    x, y = _problem()
    kernel, bias = np.array([[0.5], [-1.0], [2.0]], np.float32), np.array([0.3], np.float32)
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED_SAM], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=300, input=json.dumps([x.tolist(), y.tolist(), kernel.tolist(), bias.tolist()]))
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    a = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
    w = np.concatenate([kernel.ravel(), bias]).astype(np.float64)
    want = _sam_reference(a, y, w, 0.1, 0.05, parts=2)
    whole_batch = _sam_reference(a, y, w, 0.1, 0.05, parts=1)
    np.testing.assert_allclose(out["weights"], want, rtol=1e-5, atol=1e-6)
    assert np.abs(want - whole_batch).max() > 1e-3  # the two rules are told apart


def test_asam_equals_sam_when_every_weight_is_one():
    x, y = _problem()
    ones = [np.ones((3, 1), np.float32), np.ones(1, np.float32)]
    sam = _one_step(use_sam(_model(ones), 0.2), x, y, 0.05)
    asam = _one_step(use_sam(_model(ones), 0.2, adaptive=True, eta=0.0), x, y, 0.05)
    np.testing.assert_allclose(asam, sam, rtol=1e-6)
    plain = _one_step(_model(ones), x, y, 0.05)
    assert not np.allclose(plain, sam)  # and SAM is not plain gradient descent


def test_bad_rho_is_rejected():
    with pytest.raises(ValueError, match="rho must be > 0, got 0"):
        use_sam(_model([np.ones((3, 1), np.float32), np.ones(1, np.float32)]), 0)


@pytest.mark.slow
def test_an_asam_run_trains_and_resumes_exactly(mlflow_store, tiny):
    """Through the trainer; SAM keeps no state of its own: a run stopped after epoch 1 and
    resumed equals the uninterrupted one, bit for bit."""
    import mlflow

    from training.run.trainer import train

    class StopAfterFirstEpoch(keras.callbacks.Callback):  # runs after the checkpoint callback
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    config = tiny(sam_rho=0.5, sam_adaptive=True, epochs=2, seed=3)
    reference = train(config, evaluate_test=False, log_model=False)["run_id"]
    with pytest.raises(KeyboardInterrupt) as caught:
        train(config, evaluate_test=False, log_model=False, callbacks=[StopAfterFirstEpoch()])
    resumed = train(config.replace(resume=caught.value.losslab_run_id), evaluate_test=False,
                    log_model=False)["run_id"]
    client = mlflow.MlflowClient()
    assert client.get_run(reference).data.params["sam_adaptive"] == "True"
    for key in ("train/loss", "val/balanced_accuracy"):
        want = [(m.step, m.value) for m in client.get_metric_history(reference, key)]
        got = [(m.step, m.value) for m in client.get_metric_history(resumed, key)]
        assert sorted(got) == sorted(want), key
        assert len(want) == 2 and np.isfinite([v for _, v in want]).all()
