"""Every registered model at its minimum input (batch 2): it builds with the size the
catalogue states, trains 2 steps with a classification loss (CE, RGB input) and with a proxy
loss (ArcFace, grayscale input: tiled to 3 channels where the model wants RGB), restores
exactly from its checkpoint, and its logged LoggedModel reloads in a Python that cannot
import `losses` with the same outputs.

Cost: tracing a train step of ResNet-50 or ConvNeXt takes 30–60 s of CPU, far more than the
steps, so the models here run eagerly (`run_eagerly=True`, what the checks need: 2 steps).
One module fixture does the work per model; the tests read its results. The classifier's
head alternates by registry position (dense, cosine, ...), so both heads and their export
run on several backbones. The proxy model trains with head_lr_mult=10 and AdamW decay, so the
restore covers per-variable rates. That a restored run continues exactly (same batches, same
ops) is shown end to end in tests/training/run/test_backbones.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

from models import backbone_of, catalog, inference_model
from training.config import Config
from training.run.builders import build_loss, build_model, build_optimizer
from training.run.checkpoint import Checkpoint, restore, seed_generator_states
from training.run.tracking import log_keras_model

NAMES = catalog.names()
CLASSES = 3
REPO_ROOT = Path(__file__).resolve().parents[2]


def _data(size, channels, seed):
    rng = np.random.default_rng(seed)
    return (rng.random((4, size, size, channels), dtype=np.float32),
            np.array([0, 1, 2, 1], np.int32))


def _compiled(config, shape, seed):
    keras.utils.set_random_seed(seed)
    model = build_model(config, shape, CLASSES)
    model.compile(optimizer=build_optimizer(config, 2, model),
                  loss=build_loss(config, np.arange(CLASSES), CLASSES), run_eagerly=True)
    return model


def _values(variables) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def _run(name: str, index: int, folder: Path) -> dict:
    """Everything the tests check for one model; kept small (numbers, not models)."""
    size = catalog.find(name).min_size
    out = {}

    # Classification on RGB, 2 steps of CE (batch 2); its inference model is logged.
    x, y = _data(size, 3, 0)
    head = "dense" if index % 2 == 0 else "cosine"
    clf = _compiled(Config(model=name, loss="ce", head=head, learning_rate=1e-3),
                    (size, size, 3), 1)
    features = backbone_of(clf)
    out["backbone_params"] = features.count_params()
    out["features"] = tuple(features.output.shape)
    before = _values(clf.trainable_weights)
    history = clf.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0).history
    out["ce_loss_finite"] = bool(np.isfinite(history["loss"][0]))
    out["ce_steps"] = int(np.array(clf.optimizer.iterations))
    out["ce_moved"] = any(not np.array_equal(b, a)
                          for b, a in zip(before, _values(clf.trainable_weights), strict=True))
    logged = inference_model(clf, drop_proxies=False)
    expected = np.asarray(logged(x, training=False))
    out["export_equal"] = bool(np.allclose(expected, np.asarray(clf(x, training=False)),
                                           atol=1e-5))
    with mlflow.start_run(run_name=name):
        info = log_keras_model(logged, x[:2], expected[:2])
    out["model_uri"] = f"models:/{info.model_id}"
    np.save(folder / f"{name}.x.npy", x)
    np.save(folder / f"{name}.out.npy", expected)
    del clf, logged

    # ArcFace on grayscale, 2 steps with the protocol's settings, checkpointed and restored.
    x, y = _data(size, 1, 1)
    config = Config(model=name, loss="arcface", batch_size=4, samples_per_class=2,
                    optimizer="adamw", weight_decay=1e-3, head_lr_mult=10.0, learning_rate=1e-3,
                    epochs=2)
    proxy = _compiled(config, (size, size, 1), 2)
    out["proxy_output"] = tuple(proxy.output.shape)
    out["gray_features"] = tuple(backbone_of(proxy).output.shape)
    ckpt = folder / f"{name}-ckpt"
    history = proxy.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0,
                        callbacks=[Checkpoint(ckpt, {}, 0)]).history
    out["proxy_loss_finite"] = bool(np.isfinite(history["loss"][0]))
    restored = _compiled(config, (size, size, 1), 3)  # other initial weights
    restore(restored, ckpt, json.loads((ckpt / "state.json").read_text()))
    pairs = [(proxy.variables, restored.variables),
             (proxy.optimizer.variables, restored.optimizer.variables),
             (seed_generator_states(proxy), seed_generator_states(restored))]
    out["restored_exact"] = all(
        np.array_equal(a, b) for mine, theirs in pairs
        for a, b in zip(_values(mine), _values(theirs), strict=True))
    out["restored_steps"] = int(np.array(restored.optimizer.iterations))
    return out


@pytest.fixture(scope="module")
def results(tmp_path_factory, new_store):
    folder = tmp_path_factory.mktemp("registry")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(new_store(folder / "mlflow.db"))
    mlflow.set_experiment("registry")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # ConvNeXt has no BatchNorm, etc.
            found = {name: _run(name, i, folder) for i, name in enumerate(NAMES)}
        yield found, folder, mlflow.get_tracking_uri()
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_builds_at_its_minimum_input_with_the_catalogued_size(results, name):
    entry, got = catalog.find(name), results[0][name]
    assert got["backbone_params"] == entry.params
    assert got["features"] == (None, entry.features)
    # 1 channel fits too (the proxy model; small_cnn flattens its 2×2×128 map for retrieval;
    # linear's features are its flattened input: 1 on 1×1×1)
    gray = 1 if entry.name == "linear" else entry.features
    assert got["gray_features"] == (None, gray if entry.retrieval_pooling == "avg"
                                    else 2 * 2 * 128)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_trains_two_steps_with_ce_and_with_arcface(results, name):
    got = results[0][name]
    assert got["ce_steps"] == 2 and got["ce_loss_finite"] and got["ce_moved"]
    assert got["proxy_output"] == (None, CLASSES) and got["proxy_loss_finite"]
    assert got["export_equal"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_restores_exactly_with_per_variable_rates_and_decay(results, name):
    """Weights, BatchNorm statistics, dropout RNG, optimizer step and slots after 2 steps."""
    got = results[0][name]
    assert got["restored_steps"] == 2
    assert got["restored_exact"]


@pytest.mark.slow
def test_logged_models_reload_without_losses_with_equal_outputs(results):
    """One fresh Python for every model (each start costs ~10 s): `losses` cannot be imported
    there, and each LoggedModel's outputs equal the trained model's."""
    found, folder, uri = results
    script = (
        "import sys; sys.modules['losses'] = None\n"  # import losses → ImportError
        "import json, mlflow, numpy as np\n"
        "uris, folder = json.loads(sys.argv[1]), sys.argv[2]\n"
        "for name, uri in uris.items():\n"
        "    model = mlflow.keras.load_model(uri)\n"
        "    x = np.load(f'{folder}/{name}.x.npy')\n"
        "    want = np.load(f'{folder}/{name}.out.npy')\n"
        "    got = np.asarray(model(x, training=False))\n"
        "    np.testing.assert_allclose(got, want, atol=1e-5, err_msg=name)\n"
        "    print('ok', name)\n"
    )
    uris = {name: got["model_uri"] for name, got in found.items()}
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(uris), str(folder)],
                          capture_output=True, text=True, env=env, cwd=folder, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [w for name in NAMES for w in ("ok", name)]
