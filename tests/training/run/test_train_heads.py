"""End-to-end runs of what the registry entries ask of the trainer: deferred re-weighting
(ldam_drw), a cosine head (ldam), class proxies (arcface), early stopping and Keras logs."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from training.train import train


def _history(client, run_id, key):
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


@pytest.mark.slow
def test_ldam_drw_switches_its_weights_at_the_pinned_epoch(tiny, mlflow_store):
    """Runs are deterministic in the seed: ldam and ldam_drw share epochs 1..E−1 exactly and
    part at E = ⌊0.8·epochs⌋ + 1, when the class-balanced weights come in."""
    epochs = 3  # E = floor(2.4) + 1 = 3
    plain = train(tiny(loss="ldam", epochs=epochs, imbalance=10.0))
    drw = train(tiny(loss="ldam_drw", epochs=epochs, imbalance=10.0))
    client = mlflow.MlflowClient()
    run = client.get_run(drw["run_id"])
    assert run.data.params["loss.drw_epoch"] == "3" and run.data.params["loss.drw"] == "True"
    assert "loss.drw_epoch" not in client.get_run(plain["run_id"]).data.params
    a, b = (_history(client, r["run_id"], "train/loss") for r in (plain, drw))
    np.testing.assert_allclose(a[:2], b[:2], rtol=1e-6)
    assert abs(a[2] - b[2]) > 1e-4 * abs(a[2])


@pytest.mark.slow
def test_cosine_head_and_proxies_log_a_builtin_inference_model(tiny, mlflow_store):
    ldam = train(tiny(loss="ldam", epochs=1))
    arc = train(tiny(loss="arcface", epochs=1, batch_size=32, samples_per_class=8))
    client = mlflow.MlflowClient()
    for result, width in ((ldam, 10), (arc, 512)):
        run = client.get_run(result["run_id"])
        models = client.search_logged_models([run.info.experiment_id],
                                             filter_string=f"source_run_id = '{run.info.run_id}'")
        assert len(models) == 1 and models[0].name == "model"
        model = mlflow.keras.load_model(f"models:/{models[0].model_id}")
        assert {type(layer).__module__.split(".")[0] for layer in model.layers} == {"keras"}
        x = np.zeros((3, 8, 8, 1), np.float32)
        out = np.asarray(model(x, training=False))
        assert out.shape == (3, width)
    assert {"test/precision_at_1", "test/map_at_r"} <= set(client.get_run(arc["run_id"]).data.metrics)


@pytest.mark.slow
def test_early_stopping_stops_on_the_val_selection_metric(tiny, mlflow_store):
    """With a learning rate of 1e-9 nothing improves: patience 1 stops after epoch 2."""
    import keras

    seen = []

    class Record(keras.callbacks.Callback):  # runs after ours, like History or EarlyStopping
        def on_epoch_end(self, epoch, logs=None):
            seen.append(dict(logs))

    result = train(tiny(epochs=5, learning_rate=1e-9, early_stopping=1), callbacks=[Record()])
    assert len(seen) == 2
    assert {"loss", "val_loss", "val_accuracy", "val_balanced_accuracy", "val_ece"} <= set(seen[0])
    client = mlflow.MlflowClient()
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["losslab.stopped_epoch"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test/accuracy")] == [2]
