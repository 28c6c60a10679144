"""The landscape of a tracked run (from_run) and its command line (__main__)."""

import json
import types

import keras
import numpy as np
import pytest

from training.landscape import compute_landscape
from training.landscape.__main__ import main, parse
from training.landscape.from_run import landscape_for_config, landscape_subset


def test_parse_types_and_rejects_bad_words():
    assert parse(["run=abc", "points=11", "radius=0.5"]) == {"run": "abc", "points": 11,
                                                             "radius": 0.5}
    with pytest.raises(ValueError, match="unknown key 'grid'; valid keys: run, points"):
        parse(["run=abc", "grid=3"])
    with pytest.raises(ValueError, match="points='many' is not valid; valid: a value of type int"):
        parse(["run=abc", "points=many"])
    with pytest.raises(ValueError, match="run=<value> is required"):
        parse(["points=3"])


def test_main_exits_2_on_bad_arguments(capsys):
    assert main(["points=3"]) == 2
    assert "usage: python -m training.landscape run=<run_id>" in capsys.readouterr().err


def test_subset_is_a_seeded_permutation_prefix():
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    xs, ys = landscape_subset(x, y, 4, seed=5)
    order = np.random.default_rng(5).permutation(10)[:4]
    np.testing.assert_array_equal(ys, order)
    np.testing.assert_array_equal(xs, x[order])
    assert len(landscape_subset(x, y, 50)[1]) == 10
    with pytest.raises(ValueError, match="examples must be >= 1, got 0"):
        landscape_subset(x, y, 0)


def test_retrieval_runs_are_evaluated_as_one_batch():
    # A loss that depends on the batch composition tells one batch from several.
    def worst(y_true, y_pred):
        return keras.ops.max(keras.ops.square(keras.ops.cast(y_true, "float32") - y_pred[:, 0]))

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 2)).astype(np.float32), rng.normal(size=300).astype(np.float32)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    initial = model.get_weights()
    config = types.SimpleNamespace(task="retrieval", landscape_examples=300, landscape_points=3,
                                   landscape_radius=0.5)
    got = landscape_for_config(config, model, worst, initial, x, y)
    xs, ys = landscape_subset(x, y, 300, 0)
    want = compute_landscape(model, worst, initial, xs, ys, points=3, radius=0.5,
                             single_batch=True)
    split = compute_landscape(model, worst, initial, xs, ys, points=3, radius=0.5)  # 256 + 44
    np.testing.assert_allclose(got.grid, want.grid, rtol=1e-6)
    assert not np.allclose(got.grid, split.grid)


@pytest.mark.slow
def test_landscape_of_a_logged_run(tmp_path, new_store):
    """A run holding what the trainer logs (config.json, weight files) gets its landscape."""
    import mlflow

    from models import small_cnn
    from training.config import Config
    from training.landscape.from_run import landscape_of_run

    config = Config(loss="ce", dataset="digits", landscape_points=3, landscape_examples=32)
    model = small_cnn((8, 8, 1), 10)
    model.save_weights(tmp_path / "initial.weights.h5")
    model.set_weights([w * 0.9 for w in model.get_weights()])
    model.save_weights(tmp_path / "final.weights.h5")
    final = model.get_weights()
    mlflow.set_tracking_uri(new_store(tmp_path / "mlflow.db"))
    try:
        experiment = mlflow.create_experiment("t", artifact_location=(tmp_path / "a").as_uri())
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_text(config.to_json(), "config.json")
            mlflow.log_artifact(str(tmp_path / "initial.weights.h5"), "weights")
            mlflow.log_artifact(str(tmp_path / "final.weights.h5"), "weights")
        landscape = landscape_of_run(run.info.run_id)
        client = mlflow.MlflowClient()
        metrics = client.get_run(run.info.run_id).data.metrics
        names = {a.path for a in client.list_artifacts(run.info.run_id, "landscape")}
    finally:
        mlflow.set_tracking_uri(None)
    assert landscape.grid.shape == (3, 3)
    assert metrics["landscape/center_loss"] == pytest.approx(landscape.center_loss)
    assert "landscape/grid.npz" in names and "landscape/landscape_contour.png" in names
    # The centre is the final weights: same loss as the logged model evaluated directly.
    import losses
    from training.data import load_splits

    splits = load_splits("digits", "classification", seed=0)
    x, y = landscape_subset(splits.x_train, splits.y_train, 32, 0)
    model.set_weights(final)
    direct = float(keras.ops.mean(losses.get("ce")(y, model(x, training=False))))
    assert landscape.center_loss == pytest.approx(direct, rel=1e-5)
    assert json.loads(config.to_json())["landscape_points"] == 3
