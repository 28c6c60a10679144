"""Second stage (`stage2=`): LWS and the folded classifier against NumPy, cRT leaves the trunk
bit-identical and moves only the classifier, τ-norm's stage equals the NumPy τ-normalised
classifier, and a run interrupted at its first stage-2 epoch resumes exactly."""

from __future__ import annotations

import types
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

from training.config import Config
from training.data import load_splits
from training.metrics.long_tail import TAU_GRID
from training.run import evaluate, stage2, tracking
from training.run.builders import build_loss, build_model
from training.train import train


def numpy_logits(x, kernel, bias):
    out = np.zeros((len(x), kernel.shape[1]))
    for i in range(len(x)):
        for c in range(kernel.shape[1]):
            out[i, c] = sum(float(x[i, j]) * float(kernel[j, c]) for j in range(len(x[i])))
            out[i, c] += float(bias[c])
    return out


def test_lws_is_a_per_class_scale_of_the_frozen_layer_and_folds_into_it():
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=3).astype("float32")
    head = stage2.lws_head(kernel, bias)
    scale = np.array([0.5, 2.0, 1.5], "float32")
    head.get_layer("scale").set_weights([scale])
    assert [w.name for w in head.trainable_weights] == ["scale"]  # W and b frozen
    x = rng.normal(size=(6, 4)).astype("float32")
    want = numpy_logits(x, kernel, bias) * scale[None, :]  # f_c · (x·w_c + b_c)
    np.testing.assert_allclose(evaluate.predict(head, x), want, rtol=1e-5, atol=1e-5)
    folded_kernel, folded_bias = stage2.folded_weights(head)
    np.testing.assert_allclose(numpy_logits(x, folded_kernel, folded_bias), want, rtol=1e-5,
                               atol=1e-5)
    # The class directions are unchanged: each column is its original times f_c.
    np.testing.assert_allclose(folded_kernel / kernel, np.tile(scale, (4, 1)), rtol=1e-6)


@pytest.fixture(scope="module")
def digits():
    """A model of the run's architecture (untrained) and digits IR 10 splits."""
    config = Config(dataset="digits", imbalance=10.0, stage2_epochs=2)
    s = load_splits("digits", "classification", seed=0, imbalance=10.0)
    splits = types.SimpleNamespace(**{k: np.asarray(getattr(s, k)) for k in (
        "x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}, num_classes=s.num_classes)
    keras.utils.set_random_seed(0)
    model = build_model(config, splits.x_train.shape[1:], splits.num_classes)
    return config, model, build_loss(config, splits.y_train, splits.num_classes), splits


def run_stage(config, model, loss, splits, folder, **changes):
    with mlflow.start_run() as run:
        second = stage2.run(config.replace(**changes), model, loss, splits, folder, step=3)
    return second, mlflow.MlflowClient().get_run(run.info.run_id)


def test_crt_moves_only_the_classifier(digits, mlflow_store, tmp_path):
    config, model, loss, splits = digits
    before = [np.array(w) for w in model.get_weights()]
    second, run = run_stage(config, model, loss, splits, tmp_path, stage2="crt")
    after = second.model.get_weights()
    for got, want in zip(after[:-2], before[:-2], strict=True):  # trunk and BatchNorm stats
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(after[-2], before[-2])  # the classifier moved
    for got, want in zip(model.get_weights(), before, strict=True):  # the run's model kept
        np.testing.assert_array_equal(got, want)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train/stage2/loss")
    assert sorted(m.step for m in history) == [4, 5]  # after the 3 training epochs
    assert "val/stage2/balanced_accuracy" in run.data.metrics
    assert (tmp_path / stage2.DONE).is_file()
    assert stage2.pending_epochs(config.replace(stage2="crt"), tmp_path) == 0
    assert "stage-2 model" in second.note


def test_tau_norm_stage_is_the_numpy_tau_normalised_classifier(digits, mlflow_store, tmp_path):
    config, model, loss, splits = digits
    second, run = run_stage(config, model, loss, splits, tmp_path, stage2="tau_norm")
    tau = run.data.metrics["stage2/tau"]
    assert tau in TAU_GRID
    kernel = model.layers[-1].get_weights()[0].astype(np.float64)
    pair, _ = evaluate.dense_head(model)
    features = evaluate.features_and_logits(pair, splits.x_test[:20])[0]
    norms = np.sqrt((kernel**2).sum(axis=0))
    want = features @ (kernel / norms**tau)  # no bias
    np.testing.assert_allclose(evaluate.predict(second.model, splits.x_test[:20]), want,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["lws", "weight_balancing"])
def test_lws_and_weight_balancing_keep_the_trunk(digits, mlflow_store, tmp_path, name):
    config, model, loss, splits = digits
    second, run = run_stage(config, model, loss, splits, tmp_path, stage2=name)
    before, after = model.get_weights(), second.model.get_weights()
    for got, want in zip(after[:-2], before[:-2], strict=True):
        np.testing.assert_array_equal(got, want)
    if name == "lws":  # directions kept: each column its original times one scale
        ratio = after[-2] / before[-2]
        np.testing.assert_allclose(ratio, np.tile(ratio[0], (ratio.shape[0], 1)), rtol=1e-4)
    else:
        delta = run.data.metrics["stage2/maxnorm"]
        assert np.sqrt((after[-2] ** 2).sum(axis=0)).max() <= delta * (1 + 1e-5)


@pytest.mark.slow
def test_interrupted_at_the_first_stage2_epoch_resumes_exactly(tiny, mlflow_store,
                                                               monkeypatch):
    config = tiny(epochs=1, imbalance=10.0, stage2="crt", stage2_epochs=2, seed=3)
    reference = train(config)

    original = tracking.log_metrics

    def interrupt(values, *args, **kwargs):
        if "train/stage2/loss" in values:
            raise KeyboardInterrupt
        return original(values, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(stage2.tracking, "log_metrics", interrupt)
        with pytest.raises(KeyboardInterrupt) as caught:
            train(config)
    run_id = caught.value.losslab_run_id
    resumed = train(config.replace(resume=run_id))
    assert resumed["run_id"] == run_id
    keys = [k for k in reference if k.startswith("stage2/")]
    assert "stage2/balanced_accuracy" in keys
    for key in keys + ["balanced_accuracy", "balanced_accuracy_tau_norm"]:
        assert resumed[key] == reference[key], key
    client = mlflow.MlflowClient()
    for key in ("train/stage2/loss", "val/stage2/balanced_accuracy"):
        got = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        want = sorted((m.step, m.value) for m in client.get_metric_history(
            reference["run_id"], key))
        assert got == want, key
    run = client.get_run(run_id)
    assert "stage-2 model" in run.data.tags["mlflow.note.content"]
    assert Path(run.data.tags["losslab.checkpoint_dir"], stage2.DONE).is_file()


def numpy_cosines(x, proxies):
    out = np.zeros((len(x), proxies.shape[1]))
    for i in range(len(x)):
        for c in range(proxies.shape[1]):
            a, b = x[i].astype(np.float64), proxies[:, c].astype(np.float64)
            out[i, c] = a @ b / (np.sqrt(a @ a) * np.sqrt(b @ b))
    return out


@pytest.fixture(scope="module")
def digits_cosine(digits):
    """LDAM-DRW's cosine head on the same splits (untrained)."""
    _, _, _, splits = digits
    config = Config(dataset="digits", imbalance=10.0, stage2_epochs=2, loss="ldam_drw")
    keras.utils.set_random_seed(0)
    model = build_model(config, splits.x_train.shape[1:], splits.num_classes)
    assert type(model.layers[-1]).__name__ == "ProxyHead"
    return config, model, build_loss(config, splits.y_train, splits.num_classes), splits


def _features(model, x):
    last = model.layers[-1]
    pair = keras.Model(model.inputs[0], last.input)
    return np.asarray(keras.ops.convert_to_numpy(pair(x, training=False)), np.float64)


def test_crt_of_a_cosine_head_retrains_only_its_class_weights(digits_cosine, mlflow_store,
                                                              tmp_path):
    config, model, loss, splits = digits_cosine
    before = [np.array(w) for w in model.get_weights()]
    second, run = run_stage(config, model, loss, splits, tmp_path, stage2="crt")
    after = second.model.get_weights()
    for got, want in zip(after[:-1], before[:-1], strict=True):  # trunk: bit-identical
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(after[-1], before[-1])  # new class weights
    # Its logits are still cosines: features against the new class weights, in NumPy.
    x = splits.x_test[:8]
    np.testing.assert_allclose(evaluate.predict(second.model, x),
                               numpy_cosines(_features(model, x), after[-1]), atol=1e-5)
    assert "cosine head" in second.note
    assert "val/stage2/balanced_accuracy" in run.data.metrics


def test_the_stage_trains_a_cosine_head_on_cross_entropy_of_scaled_cosines():
    rng = np.random.default_rng(1)
    cosines = rng.uniform(-1, 1, size=(5, 4)).astype("float32")
    y = np.array([0, 3, 1, 1, 2])
    want = 0.0
    for i in range(5):  # softmax cross entropy of 30 · cos, by hand
        z = 30.0 * cosines[i].astype(np.float64)
        want += (np.log(np.sum(np.exp(z - z.max()))) + z.max() - z[y[i]]) / 5
    got = keras.ops.mean(stage2._cross_entropy(30.0)(y, cosines))
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(got)), want, rtol=1e-5)


def test_lws_of_a_cosine_head_scales_each_class_cosine_in_built_in_layers(
        digits_cosine, mlflow_store, tmp_path):
    config, model, loss, splits = digits_cosine
    proxies = model.layers[-1].get_weights()[0]
    second, run = run_stage(config, model, loss, splits, tmp_path, stage2="lws")
    names = {type(layer).__name__ for layer in second.model.layers}
    assert "ProxyHead" not in names and "ClassScale" not in names  # loads without our code
    x = splits.x_test[:8]
    cosines = numpy_cosines(_features(model, x), proxies)
    got = evaluate.predict(second.model, x)
    scales = got / cosines  # one f_c per class, the same for every image
    np.testing.assert_allclose(scales, np.tile(scales[0], (len(x), 1)), rtol=1e-3)
    assert not np.allclose(scales[0], 1.0)  # the scales moved from their initial 1
    for got_w, want in zip(second.model.get_weights()[:-1], model.get_weights()[:-1],
                           strict=True):
        np.testing.assert_array_equal(got_w, want)


@pytest.mark.parametrize("name", ["tau_norm", "weight_balancing"])
def test_a_cosine_head_refuses_the_stages_that_leave_it_unchanged(name):
    from training.config import ConfigError

    with pytest.raises(ConfigError, match=rf"stage2={name} leaves a cosine head unchanged.*"
                                          r"choose stage2=crt or lws, or head=dense"):
        Config(loss="ldam_drw", stage2=name)
    Config(loss="ldam_drw", stage2=name, head="dense")  # a dense head takes it


@pytest.mark.slow
@pytest.mark.parametrize("name", ["crt", "lws"])
def test_a_cosine_head_run_logs_its_stage2_model_in_built_in_layers(tiny, mlflow_store, name):
    """`make train LOSS=ldam_drw ARGS="stage2=crt|lws"` through the trainer: test/stage2/
    metrics beside test/, and the logged model is the stage-2 model, loadable without our
    code, whose test predictions give the logged stage-2 accuracy."""
    result = train(tiny(loss="ldam_drw", imbalance=10.0, stage2=name, stage2_epochs=2))
    client = mlflow.MlflowClient()
    run = client.get_run(result["run_id"])
    assert {"test/balanced_accuracy", "test/stage2/balanced_accuracy"} <= set(run.data.metrics)
    (logged,) = client.search_logged_models([run.info.experiment_id],
                                            filter_string=f"source_run_id = '{run.info.run_id}'")
    model = mlflow.keras.load_model(f"models:/{logged.model_id}")
    assert {type(layer).__module__.split(".")[0] for layer in model.layers} == {"keras"}
    splits = load_splits("digits", "classification", seed=0, imbalance=10.0)
    predicted = np.argmax(evaluate.predict(model, np.asarray(splits.x_test)), axis=1)
    assert np.mean(predicted == np.asarray(splits.y_test)) == pytest.approx(
        run.data.metrics["test/stage2/accuracy"], abs=1e-6)
    assert "stage-2 model" in run.data.tags["mlflow.note.content"]
