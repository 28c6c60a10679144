"""compute_landscape end to end on small models, figures and MLflow logging."""

import io

import keras
import numpy as np
import pytest

from training.landscape import (
    Landscape,
    compute_landscape,
    figures,
    filter_normalized_direction,
    log_landscape,
    side_by_side,
)


def _linear_setup():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4)).astype(np.float32)
    y = rng.normal(size=(12, 2)).astype(np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    initial = model.get_weights()
    kernel = rng.normal(size=(4, 2)).astype(np.float32)
    model.set_weights([kernel, np.array([0.3, -0.2], np.float32)])
    return model, initial, x, y


def _mse(x, y, kernel, bias):
    """mean over examples and outputs of the squared error (Keras "mse" then batch mean)."""
    pred = x.astype(np.float64) @ np.asarray(kernel, np.float64) + np.asarray(bias, np.float64)
    return float(np.mean((pred - y) ** 2))


def test_linear_model_matches_closed_form_and_weights_are_restored():
    model, initial, x, y = _linear_setup()
    final = model.get_weights()
    result = compute_landscape(model, "mse", initial, x, y, points=5, radius=0.5, seed=3,
                               alphas=[0.0, 0.5, 1.0, 1.5], sharpness_radius=0.2, batch_size=5)
    for a, b in zip(final, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # 1-D line: explicit interpolation of kernel and bias.
    for alpha, value in zip(result.alphas, result.profile, strict=True):
        kernel = (1 - alpha) * initial[0] + alpha * final[0]
        bias = (1 - alpha) * initial[1] + alpha * final[1]
        assert value == pytest.approx(_mse(x, y, kernel, bias), rel=1e-5)
    # 2-D grid: the kernel moves along the filter-normalized directions, the bias stays put.
    d1 = filter_normalized_direction(final, 3, stream=0)[0]
    d2 = filter_normalized_direction(final, 3, stream=1)[0]
    np.testing.assert_allclose(result.coords, [-0.5, -0.25, 0.0, 0.25, 0.5])
    for i, s in enumerate(result.coords):
        for j, t in enumerate(result.coords):
            want = _mse(x, y, final[0] + s * d1 + t * d2, final[1])
            assert result.grid[i, j] == pytest.approx(want, rel=1e-5)
    assert result.center_loss == pytest.approx(_mse(x, y, *final), rel=1e-6)
    assert result.grid[2, 2] == pytest.approx(result.center_loss, rel=1e-6)
    # Sharpness of a quadratic on a ring (n >= 3 angles): r^2 * (H11 + H22) / 4 with
    # H_kk = 2 * mean((x @ d_k)^2) over examples and outputs.
    u1, u2 = x.astype(np.float64) @ d1, x.astype(np.float64) @ d2
    want = 0.2**2 * (2 * np.mean(u1**2) + 2 * np.mean(u2**2)) / 4
    assert result.sharpness == pytest.approx(want, rel=1e-4)


def test_cnn_with_batchnorm_runs_and_restores_everything():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    initial = model.get_weights()
    final = [w + 0.1 for w in initial]
    model.set_weights(final)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=20)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    result = compute_landscape(model, loss, initial, x, y, points=3, alphas=[0.0, 1.0],
                               ring_directions=4, single_batch=True)
    for a, b in zip(final, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert result.grid.shape == (3, 3) and result.ring_losses.shape == (4,)
    assert np.all(np.isfinite(result.grid))
    assert result.profile[1] == pytest.approx(result.center_loss, rel=1e-6)


@pytest.mark.parametrize("points", [2, 4, 1])
def test_even_or_tiny_grids_are_rejected(points):
    model, initial, x, y = _linear_setup()
    with pytest.raises(ValueError, match=f"odd integer >= 3.*got {points}"):
        compute_landscape(model, "mse", initial, x, y, points=points)


def _fake_landscape(grid):
    k = grid.shape[0]
    return Landscape(alphas=np.linspace(-0.25, 1.25, 7), profile=np.linspace(3, 0.1, 7),
                     coords=np.linspace(-1, 1, k), grid=grid, sharpness=0.5, center_loss=0.1,
                     sharpness_radius=0.25, ring_angles=np.linspace(0, 5, 6),
                     ring_losses=np.full(6, 0.6), seed=0)


@pytest.mark.parametrize("kind", ["smooth", "huge_range", "flat", "with_nan"])
def test_figures_render_to_png(kind):
    s, t = np.meshgrid(np.linspace(-1, 1, 7), np.linspace(-1, 1, 7), indexing="ij")
    grid = {"smooth": 0.1 + s**2 + 2 * t**2, "huge_range": 0.01 * np.exp(10 * (s**2 + t**2)),
            "flat": np.ones_like(s), "with_nan": np.where(s > 0.9, np.nan, 1 + s**2)}[kind]
    drawn = figures(_fake_landscape(grid), "test")
    assert set(drawn) == {"landscape_line.png", "landscape_contour.png",
                          "landscape_surface.png", "landscape_sharpness.png"}
    for figure in drawn.values():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_side_by_side_renders_and_shares_levels():
    s, t = np.meshgrid(np.linspace(-1, 1, 7), np.linspace(-1, 1, 7), indexing="ij")
    drawn = side_by_side({"ce": _fake_landscape(0.1 + s**2), "focal": _fake_landscape(5 + t**2)},
                         "compare")
    assert len(drawn.axes) == 4  # two slices, the line overlay, one shared colour bar
    buffer = io.BytesIO()
    drawn.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="at least one"):
        side_by_side({}, "none")


def test_npz_round_trip(tmp_path):
    original = _fake_landscape(np.arange(49.0).reshape(7, 7))
    original.save_npz(str(tmp_path / "grid.npz"))
    loaded = Landscape.load_npz(str(tmp_path / "grid.npz"))
    np.testing.assert_array_equal(loaded.grid, original.grid)
    np.testing.assert_array_equal(loaded.alphas, original.alphas)
    assert (loaded.sharpness, loaded.center_loss, loaded.seed) == (0.5, 0.1, 0)


@pytest.mark.slow
def test_log_landscape_writes_artifacts_and_metrics(tmp_path, new_store):
    import mlflow

    landscape = _fake_landscape(0.1 + np.arange(49.0).reshape(7, 7) / 10)
    mlflow.set_tracking_uri(new_store(tmp_path / "mlflow.db"))
    try:
        # An explicit artifact location: the default would be ./mlruns in the working directory.
        mlflow.create_experiment("landscape-test", artifact_location=(tmp_path / "art").as_uri())
        mlflow.set_experiment("landscape-test")
        with mlflow.start_run() as run:
            log_landscape(landscape)
        client = mlflow.MlflowClient()
        names = {a.path for a in client.list_artifacts(run.info.run_id, "landscape")}
        assert names == {"landscape/grid.npz", "landscape/landscape_line.png",
                         "landscape/landscape_contour.png", "landscape/landscape_surface.png",
                         "landscape/landscape_sharpness.png"}
        metrics = client.get_run(run.info.run_id).data.metrics
        assert metrics["landscape/sharpness"] == pytest.approx(0.5)
        assert metrics["landscape/center_loss"] == pytest.approx(0.1)
        assert metrics["landscape/line_max"] == pytest.approx(landscape.profile[1])  # alpha=0
        path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                   artifact_path="landscape/grid.npz",
                                                   dst_path=str(tmp_path / "down"))
        np.testing.assert_array_equal(Landscape.load_npz(path).grid, landscape.grid)
        with pytest.raises(RuntimeError, match="active MLflow run"):
            log_landscape(landscape)
    finally:
        mlflow.set_tracking_uri(None)
