"""SAM and ASAM steps against hand-computed updates on a quadratic, and one run end to end."""

import keras
import numpy as np
import pytest

from training.run.sam import use_sam


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


def _one_step(model, x, y, lr):
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
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
