"""End to end: `train()` for every loss on a shrunken config leaves a complete MLflow run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

import losses
from training.train import train

CLASSIFICATION_METRICS = ["loss", "accuracy", "balanced_accuracy", "macro_f1", "ece"]
RETRIEVAL_METRICS = ["precision_at_1", "recall_at_5", "r_precision", "map_at_r"]
MINING_STATS = ["active_fraction", "mean_pos_distance", "mean_neg_distance"]


def _history_steps(client, run_id, key):
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def _artifacts(client, run_id, path=""):
    found = []
    for item in client.list_artifacts(run_id, path):
        found += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    ("loss", "extra"),
    [
        ("ce", {}),
        ("balanced_ce", {"imbalance": 5.0, "loss_args": {"beta": 0.99}}),
        ("focal", {"loss_args": {"gamma": 1.0}}),
        ("triplet", {"loss_args": {"mining": "hard"}}),
        ("contrastive", {}),
    ],
)
def test_train_every_loss_leaves_a_complete_run(loss, extra, tiny, mlflow_store, tmp_path):
    config = tiny(loss=loss, **extra)
    result = train(config)
    client = mlflow.MlflowClient()
    run = client.get_run(result["run_id"])

    assert run.info.status == "FINISHED"
    # Artifacts live beside the SQLite database, not in ./mlruns of the working directory.
    store_dir = Path(mlflow_store.removeprefix("sqlite:///")).parent
    assert run.info.artifact_uri.startswith((store_dir / "mlruns").as_uri())
    assert run.data.params["loss"] == loss and run.data.params["epochs"] == "2"
    assert run.data.tags["losslab.task"] == config.task
    assert run.data.tags["losslab.loss_class"] == losses.spec(loss).import_path
    # Params: the chosen loss's arguments only, as loss.<arg>; no other loss's.
    loss_params = {k for k in run.data.params if k.startswith("loss.")}
    assert loss_params == {f"loss.{a}" for a in losses.spec(loss).arg_names}
    for key, value in extra.get("loss_args", {}).items():
        assert run.data.params[f"loss.{key}"] == str(value)
    steps = [1, 2]
    metrics = ["train/loss", "train/lr"]
    if config.task == "classification":
        metrics += [f"val/{m}" for m in CLASSIFICATION_METRICS]
        final = [f"test/{m}" for m in CLASSIFICATION_METRICS] + ["test/balanced_accuracy_posthoc"]
    else:
        metrics += [f"val/{m}" for m in RETRIEVAL_METRICS] + [f"train/{m}" for m in MINING_STATS]
        final = [f"test/{m}" for m in RETRIEVAL_METRICS]
    for key in metrics:
        assert _history_steps(client, run.info.run_id, key) == steps, key
    for key in final:
        assert len(client.get_metric_history(run.info.run_id, key)) == 1, key
        assert np.isfinite(run.data.metrics[key])
    assert result[final[0].removeprefix("test/")] == pytest.approx(run.data.metrics[final[0]])

    artifacts = _artifacts(client, run.info.run_id)
    expected = {"config.json", "plots/loss_curves.png", "weights/initial.weights.h5",
                "weights/final.weights.h5"}
    if config.task == "classification":
        expected |= {"plots/confusion.png", "plots/reliability.png", "plots/per_class_recall.png"}
    else:
        expected |= {"plots/embeddings.png", "plots/neighbours.png"}
    assert expected <= set(artifacts), expected - set(artifacts)
    inputs = {i.dataset.name for i in run.inputs.dataset_inputs}
    assert inputs == {"digits:train", "digits:val", "digits:test"}
    # The model is an MLflow 3 LoggedModel, and the test metrics are linked to it.
    (model,) = client.search_logged_models([run.info.experiment_id])
    assert model.source_run_id == run.info.run_id and model.name == "model"
    assert {m.key for m in model.metrics} == set(k for k in run.data.metrics if k.startswith("test/"))
    assert run.data.tags["mlflow.note.content"].startswith(f"**{loss}**")
    if config.task == "classification":  # per-class recall: a table, recomputed by hand here
        table = json.loads(Path(client.download_artifacts(
            run.info.run_id, "eval/per_class_recall.json", str(tmp_path))).read_text())
        rows = dict(zip(table["columns"], zip(*table["data"], strict=True), strict=True))
        with np.load(client.download_artifacts(run.info.run_id, "eval/test_outputs.npz",
                                               str(tmp_path))) as outputs:
            predicted, labels = outputs["probs"].argmax(axis=1), outputs["labels"]
        by_hand = [float(np.mean(predicted[labels == c] == c)) for c in range(10)]
        np.testing.assert_allclose(rows["recall"], by_hand, rtol=1e-9)  # JSON: 10 digits
        assert not any(k.startswith("test/recall_class_") for k in run.data.metrics)


@pytest.mark.slow
def test_logged_model_reloads_without_custom_objects(tiny, mlflow_store, tmp_path):
    """A fresh interpreter loads the model with mlflow.keras.load_model, no custom_objects."""
    config = tiny(loss="focal", epochs=1)
    result = train(config)
    (model,) = mlflow.MlflowClient().search_logged_models([result["experiment_id"]])
    model_id = model.model_id
    code = (
        "import mlflow, numpy as np, sys; "
        f"mlflow.set_tracking_uri({mlflow_store!r}); "
        f"m = mlflow.keras.load_model('models:/{model_id}'); "
        "x = np.load(sys.argv[1]); "
        "np.save(sys.argv[2], m.predict(x, verbose=0)); "
        "print('losses' in sys.modules)"
    )
    x = np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "x.npy"), str(tmp_path / "out.npy")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("False")  # our loss package was never imported
    # Same outputs as the trained weights, rebuilt here from the run's final weight file.
    from training.run.builders import build_model

    reference = build_model(config, (8, 8, 1), 10)
    weights = mlflow.artifacts.download_artifacts(
        f"runs:/{result['run_id']}/weights/final.weights.h5", dst_path=str(tmp_path)
    )
    reference.load_weights(weights)
    expected = np.asarray(reference(x, training=False))
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-5, atol=1e-5)

