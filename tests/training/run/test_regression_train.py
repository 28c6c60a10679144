"""End to end: regression runs through `train()` (diabetes, a weighted CSV, real MNIST images
listed with float targets) and `make train` with a path holding a space. Each run's logged
test metrics are recomputed here with loops over its logged raw test outputs."""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pytest
from PIL import Image

from tests.training.data.written import mnist
from training.data import load_splits
from training.data.regression import regression_dataset
from training.train import train

REPO_ROOT = Path(__file__).resolve().parents[3]
POINT = ("rmse", "mae", "r2", "median_ae")


def _outputs(run_id: str) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.artifacts.download_artifacts(run_id=run_id,
                                                   artifact_path="eval/test_outputs.npz",
                                                   dst_path=folder)
        with np.load(path) as data:
            return {k: data[k] for k in data.files}


def _weighted_rmse_mae(pred, y, w):
    total = sum(w)
    rmse = math.sqrt(sum(wi * (p - t) ** 2 for p, t, wi in zip(pred, y, w, strict=True)) / total)
    return rmse, sum(wi * abs(p - t) for p, t, wi in zip(pred, y, w, strict=True)) / total


@pytest.mark.slow
def test_diabetes_trains_and_logs_the_regression_metrics(mlflow_store, tiny):
    config = tiny(loss="mse", dataset="diabetes", epochs=1)
    result = train(config)
    run = mlflow.get_run(result["run_id"])
    metrics = run.data.metrics
    for name in POINT:
        assert f"val/{name}" in metrics and f"test/{name}" in metrics
    assert run.data.params["model"] == "auto" and run.data.tags["losslab.model"] == "mlp"
    logged = _outputs(result["run_id"])
    splits = load_splits("diabetes", "regression", seed=config.seed)
    assert np.array_equal(logged["targets"], splits.y_test)
    pred = logged["outputs"][:, 0].tolist()
    rmse, mae = _weighted_rmse_mae(pred, splits.y_test.tolist(), [1.0] * len(pred))
    assert metrics["test/rmse"] == pytest.approx(rmse, rel=1e-6)
    assert metrics["test/mae"] == pytest.approx(mae, rel=1e-6)
    assert run.data.params["data.dropped_rows"] == "0"


def _weighted_csv(path: Path, nan_rows: int = 0) -> Path:
    rng = np.random.default_rng(0)
    lines = ["größe,farbe,gewicht,wert"]
    lines += [f"nan,rot,1,{i}" for i in range(nan_rows)]
    for i in range(60):
        size = float(rng.uniform(0, 10))
        color = ("rot", "blau", "grün")[i % 3]
        lines.append(f"{size:.3f},{color},{1 + i % 4},{2 * size + (i % 3) + rng.normal():.3f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_weights_reach_the_pipeline_as_sample_weights(tmp_path):
    path = _weighted_csv(tmp_path / "w.csv")
    s = load_splits(f"csv:{path}", "regression", seed=1, target="wert", weight="gewicht")
    x, y, w = next(iter(regression_dataset(s.x_train, s.y_train, s.w_train, 8, seed=1)))
    order = np.random.default_rng([1, 0]).permutation(len(s.y_train))[:8]  # epoch 0
    np.testing.assert_array_equal(y.numpy(), s.y_train[order])
    np.testing.assert_array_equal(w.numpy(), s.w_train[order])
    assert set(np.unique(s.w_train)) <= {1.0, 2.0, 3.0, 4.0}


@pytest.mark.slow
def test_weighted_csv_trains_and_scores_weighted(mlflow_store, tiny, tmp_path):
    path = _weighted_csv(tmp_path / "w.csv", nan_rows=2)
    config = tiny(loss="mae", dataset=f"csv:{path}", target="wert", weight="gewicht",
                  model="linear", epochs=1, batch_size=16, drop_nan=True)
    result = train(config)
    logged = _outputs(result["run_id"])
    s = load_splits(f"csv:{path}", "regression", seed=0, target="wert", weight="gewicht",
                    drop_nan=True)
    assert mlflow.get_run(result["run_id"]).data.params["data.dropped_rows"] == "2"
    np.testing.assert_array_equal(logged["weights"], s.w_test)
    rmse, mae = _weighted_rmse_mae(logged["outputs"][:, 0].tolist(), s.y_test.tolist(),
                                   s.w_test.tolist())
    metrics = mlflow.get_run(result["run_id"]).data.metrics
    assert metrics["test/rmse"] == pytest.approx(rmse, rel=1e-6)
    assert metrics["test/mae"] == pytest.approx(mae, rel=1e-6)


@pytest.mark.slow
def test_images_listed_with_float_targets_train_a_regression_head(mlflow_store, tiny,
                                                                   tmp_path):
    images, labels = mnist(48)
    lines = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(image, mode="L").save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png {label * 1.5 + 0.25:.2f}")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    config = tiny(loss="pinball", dataset="list:train.txt", data_root=str(tmp_path), epochs=1,
                  batch_size=16)
    result = train(config)
    logged = _outputs(result["run_id"])
    assert logged["outputs"].shape == (len(logged["targets"]), 3)  # one per quantile
    assert set(np.round(logged["targets"], 2)) <= {round(v * 1.5 + 0.25, 2) for v in range(10)}
    run = mlflow.get_run(result["run_id"])
    assert run.data.tags["losslab.model"] == "small_cnn"
    # the quantile head's own metrics: the median column's pinball loss, by a loop
    y, q50 = logged["targets"].tolist(), logged["outputs"][:, 1].tolist()
    want = sum(max(0.5 * (t - p), -0.5 * (t - p)) for t, p in zip(y, q50, strict=True)) / len(y)
    assert run.data.metrics["test/pinball_q50"] == pytest.approx(want, rel=1e-5)
    assert "val/interval_coverage" in run.data.metrics


def test_make_passes_a_dataset_path_with_spaces_as_one_argument():
    out = subprocess.run(["make", "-n", "-s", "-o", ".venv/.stamp-run", "train",
                          "DATASET=csv:/data/my data/it's.csv", "LOSS=mse"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    words = shlex.split(out.split(" -m ", 1)[1])
    assert words[:3] == ["training.train", "loss=mse", "dataset=csv:/data/my data/it's.csv"]


@pytest.mark.parametrize(("target", "key"), [("tune", "dataset"), ("compare", "dataset"),
                                             ("compare", "datasets")])
def test_make_tune_and_compare_pass_paths_with_spaces_as_one_argument(target, key):
    value = "digits,idx:/data/my data" if key == "datasets" else "csv:/data/my data/it's.csv"
    out = subprocess.run(["make", "-n", "-s", "-o", ".venv/.stamp-run", target,
                          f"{key.upper()}={value}", "LOSS=mse"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    words = shlex.split(out.strip().splitlines()[-1].split(" -m ", 1)[1])
    assert f"{key}={value}" in words


@pytest.mark.slow
def test_make_train_on_a_csv_in_a_folder_with_a_space(mlflow_store, tmp_path):
    path = _weighted_csv(tmp_path / "my data" / "t.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    env["MLFLOW_TRACKING_URI"] = mlflow_store
    proc = subprocess.run(
        ["make", "-s", "-o", ".venv/.stamp-run", "train", f"DATASET=csv:{path}", "LOSS=mse",
         "EPOCHS=1", f"ARGS=target=wert checkpoint_dir={tmp_path / 'ck'}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test metrics" in proc.stdout and "rmse" in proc.stdout
