"""The model keys against hand computations: per-variable rates and weight decay after one
step, frozen BatchNorm, the warm-up, pretrained weights (a file, Keras's imagenet cache,
offline), bad input with exit code 2 and no run, and one end-to-end run with all of it that
is interrupted inside the warm-up and resumes exactly.

Models are small here (small_cnn and resnet20 on 8×8, mobilenet_v3_small at 32×32); every
registered model is built, trained and restored in tests/models/test_registry.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import keras
import mlflow
import numpy as np
import pytest
import tensorflow as tf

import models
from models import backbone, backbone_of, catalog, head_variables
from models.applications import APPLICATION_LAYER
from training.cli import run_cli
from training.config import Config, ConfigError
from training.run import optim
from training.run.builders import build_loss, build_model, build_optimizer
from training.run.callbacks import MlflowLogger
from training.train import train

REPO_ROOT = Path(__file__).resolve().parents[3]
LR = 0.1


def _batch(shape=(8, 8, 3), n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape), dtype=np.float32), np.arange(n, dtype=np.int32) % 3


def _one_step(model, optimizer):
    """(gradients, weights before, weights after) of one step on a fixed batch."""
    x, y = _batch()
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    grads = tape.gradient(loss, variables)
    before = [np.array(v) for v in variables]
    optimizer.apply(grads, variables)
    return [np.asarray(g) for g in grads], before, [np.array(v) for v in variables]


def _assert_moved(before, after, want, name):
    """after − before == −want, up to float32 rounding of the stored weights (w ≈ 1 holds
    Δw ≈ 1e-4 only to ~6e-8: one unit in the last place of w)."""
    got = before - after
    slack = 1e-4 * np.abs(want) + 2 * np.spacing(np.abs(before).astype(np.float32))
    bad = np.abs(got - want) > slack
    assert not bad.any(), (name, got[bad][:5], want[bad][:5])


def _resnet20():
    keras.utils.set_random_seed(0)
    return models.build("resnet20", (8, 8, 3), 3, output="logits")


# --- per-variable rates and weight decay, by hand ------------------------------------------


def test_head_lr_mult_ten_with_plain_sgd_moves_the_head_ten_times_as_far():
    """Plain SGD: Δw = −rate·g. The same gradient moves a head variable 10× as far."""
    model = _resnet20()
    optimizer = optim.SGD(LR, momentum=0.0, head_lr_mult=10.0)
    head = {id(v) for v in head_variables(model)}
    optimizer.set_head(head_variables(model))
    grads, before, after = _one_step(model, optimizer)
    assert len(head) == 2  # the dense logits' kernel and bias
    for variable, g, b, a in zip(model.trainable_variables, grads, before, after, strict=True):
        multiple = 10.0 if id(variable) in head else 1.0
        _assert_moved(b, a, LR * multiple * g, variable.path)


def test_head_lr_mult_and_coupled_decay_of_the_configured_sgd():
    """optimizer=sgd is Nesterov with momentum μ = 0.9; from zero momentum one step moves
    w by −(1 + μ)·rate·(g + λw), rate = lr × 10 on the head (PyTorch's SGD weight_decay)."""
    model = _resnet20()
    config = Config(model="resnet20", optimizer="sgd", lr_schedule="constant", learning_rate=LR,
                    head_lr_mult=10.0, weight_decay=0.01)
    optimizer = build_optimizer(config, 1, model)
    head = {id(v) for v in head_variables(model)}
    grads, before, after = _one_step(model, optimizer)
    for variable, g, b, a in zip(model.trainable_variables, grads, before, after, strict=True):
        rate = LR * (10.0 if id(variable) in head else 1.0)
        _assert_moved(b, a, 1.9 * rate * (g + 0.01 * b), variable.path)


def test_adamw_decay_is_decoupled_and_uses_the_variables_rate():
    """First Adam step: m = (1−β1)g, v = (1−β2)g², step = rate·√(1−β2)/(1−β1)·m/(√v + ε);
    AdamW first shrinks w by rate·λ·w. Both at 10× the rate on the head."""
    model = _resnet20()
    config = Config(model="resnet20", optimizer="adamw", lr_schedule="constant",
                    learning_rate=1e-3, head_lr_mult=10.0, weight_decay=0.05)
    optimizer = build_optimizer(config, 1, model)
    head = {id(v) for v in head_variables(model)}
    grads, before, after = _one_step(model, optimizer)
    b1, b2, eps = 0.9, 0.999, 1e-7  # Keras's Adam defaults
    for variable, g, b, a in zip(model.trainable_variables, grads, before, after, strict=True):
        rate = 1e-3 * (10.0 if id(variable) in head else 1.0)
        m, v = (1 - b1) * g, (1 - b2) * g**2
        step = rate * np.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + eps)
        _assert_moved(b, a, rate * 0.05 * b + step, variable.path)


def test_plain_settings_keep_kerass_own_optimizers():
    model = _resnet20()
    for kind, cls in (("adam", keras.optimizers.Adam), ("adamw", keras.optimizers.AdamW),
                      ("sgd", keras.optimizers.SGD)):
        built = build_optimizer(Config(optimizer=kind), 1, model)
        assert type(built) is cls
    assert build_optimizer(Config(optimizer="adamw"), 1).weight_decay == pytest.approx(1e-4)


# --- freeze_bn and the warm-up ---------------------------------------------------------------


def _bn_weights(model):
    layers = [layer for layer in models.all_layers(model)
              if isinstance(layer, keras.layers.BatchNormalization)]
    return [np.array(w) for layer in layers for w in layer.weights]


def _fit_epochs(config, epochs, callbacks=(), eager=True):
    keras.utils.set_random_seed(0)
    x, y = _batch((8, 8, 1), n=16)
    model = build_model(config, (8, 8, 1), 3)
    model.compile(optimizer=build_optimizer(config, 4, model),
                  loss=build_loss(config, y, 3), run_eagerly=eager)
    return model, lambda: model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0,
                                    callbacks=[*optim.callbacks(config), *callbacks])


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_bn_keeps_the_moving_statistics_for_an_epoch(freeze):
    model, fit = _fit_epochs(Config(model="resnet20", freeze_bn=freeze), 1)
    bn_before = _bn_weights(model)
    kernel = np.array(backbone_of(model).get_layer("stem_conv").kernel)
    fit()
    same = [np.array_equal(b, a) for b, a in zip(bn_before, _bn_weights(model), strict=True)]
    assert all(same) if freeze else not any(same)  # mean, variance, gamma, beta of all 19 BNs
    assert not np.array_equal(kernel, np.array(backbone_of(model).get_layer("stem_conv").kernel))


def test_warmup_freezes_the_backbone_for_its_epochs_then_trains_everything():
    """warmup_epochs=1 of 2: after epoch 1 every backbone weight (BatchNorm statistics
    included) is as initialised and the head has moved; after epoch 2 the backbone has moved.
    In graph mode: the switch must retrace the train step."""
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(([np.array(w) for w in backbone_of(self.model).weights],
                         [np.array(v) for v in head_variables(self.model)]))

    config = Config(warmup_epochs=1, epochs=2, lr_schedule="constant")
    model, fit = _fit_epochs(config, 2, [Record()], eager=False)
    backbone_start = [np.array(w) for w in backbone_of(model).weights]
    head_start = [np.array(v) for v in head_variables(model)]
    fit()
    (backbone_1, head_1), (backbone_2, _) = seen
    assert all(np.array_equal(a, b) for a, b in zip(backbone_start, backbone_1, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(head_start, head_1, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(backbone_1, backbone_2, strict=True))
    assert all(layer.trainable for layer in models.all_layers(backbone_of(model)))
    assert int(np.array(model.optimizer.iterations)) == 8  # 4 steps per epoch, both phases


# --- pretrained weights ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_pretrained_path_round_trip_gives_the_files_weights(tmp_path, suffix):
    keras.utils.set_random_seed(1)
    source = backbone("resnet20", (8, 8, 1))
    path = tmp_path / f"resnet20{suffix}"
    source.save_weights(path) if suffix == ".weights.h5" else source.save(path)
    keras.utils.set_random_seed(2)  # other initial weights
    model = build_model(Config(model="resnet20", pretrained=str(path)), (8, 8, 1), 3)
    got = backbone_of(model).get_weights()
    want = source.get_weights()
    assert len(got) == len(want) == 95  # 19 conv kernels, 4 variables per BatchNorm
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_pretrained_path_of_another_architecture_names_the_layer(tmp_path):
    path = tmp_path / "resnet32.weights.h5"
    backbone("resnet32", (8, 8, 1)).save_weights(path)
    with pytest.raises(ConfigError, match=r"is not a weight file of resnet20 on input \(8, 8, 1\): "
                                          r"layer stage\d_block\d_\w+ has shape \(3, 3, \d+, \d+\), "
                                          r"the file holds \(3, 3, \d+, \d+\)"):
        build_model(Config(model="resnet20", pretrained=str(path)), (8, 8, 1), 3)


def _legacy_h5(app: keras.Model, path: Path) -> dict[str, list[np.ndarray]]:
    """A weight file in Keras's ImageNet format (HDF5: `layer_names`, one group per layer with
    its `weight_names`, trainable weights first), written by hand with random values →
    {layer name: the arrays written, in that order}."""
    rng = np.random.default_rng(7)
    written = {}
    with h5py.File(path, "w") as f:
        layers = [layer for layer in app.layers if layer.weights]
        f.attrs["layer_names"] = [layer.name.encode() for layer in layers]
        for layer in layers:
            group = f.create_group(layer.name)
            weights = layer.trainable_weights + layer.non_trainable_weights
            names = [f"{layer.name}/{i}" for i in range(len(weights))]
            group.attrs["weight_names"] = [n.encode() for n in names]
            written[layer.name] = [rng.normal(size=w.shape).astype(np.float32) for w in weights]
            for name, value in zip(names, written[layer.name], strict=True):
                group.create_dataset(name, data=value)
    return written


def test_imagenet_weights_come_from_kerass_cache_folder(tmp_path, monkeypatch):
    """KERAS_HOME is a fresh folder; the cached file is one the test writes."""
    entry = catalog.find("mobilenet_v3_small")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    keras.utils.set_random_seed(3)
    app = backbone_of(build_model(Config(model=entry.name), (32, 32, 3), 3)).get_layer(
        APPLICATION_LAYER)
    written = _legacy_h5(app, tmp_path / "models" / entry.imagenet.file)
    keras.utils.set_random_seed(4)
    model = build_model(Config(model=entry.name, pretrained="imagenet"), (32, 32, 3), 3)
    loaded = backbone_of(model).get_layer(APPLICATION_LAYER)
    assert len(written) > 50
    for name, values in written.items():
        layer = loaded.get_layer(name)
        got = layer.trainable_weights + layer.non_trainable_weights
        for g, w in zip(got, values, strict=True):
            np.testing.assert_array_equal(np.array(g), w, err_msg=name)


def test_imagenet_weights_offline_and_not_cached_name_the_file_and_folder(tmp_path, monkeypatch):
    """No network here, and none needed: the download URL is a closed local port."""
    entry = catalog.find("mobilenet_v3_small")
    offline = dataclasses.replace(entry, imagenet=dataclasses.replace(
        entry.imagenet, url="http://127.0.0.1:9/" + entry.imagenet.file))
    monkeypatch.setitem(catalog._REGISTRY, entry.name, offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    folder = tmp_path / "models"
    with pytest.raises(ConfigError) as caught:
        build_model(Config(model=entry.name, pretrained="imagenet"), (32, 32, 3), 3)
    message = str(caught.value)
    assert f"the imagenet weights {entry.imagenet.file} are not in {folder}" in message
    assert "download failed" in message and f"put it in {folder}" in message


# --- bad input: exit 2, the valid choices, no run ------------------------------------------


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    """A module of user models on sys.path: one good, one without BatchNorm, one not a model."""
    (tmp_path / "my_models.py").write_text(textwrap.dedent("""
        import keras

        def tiny(input_shape):
            inputs = keras.Input(input_shape)
            h = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
            return keras.Model(inputs, keras.layers.Conv2D(16, 3)(h))  # a (B, h, w, 16) map

        def not_a_model(input_shape):
            return 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_models"
    sys.modules.pop("my_models", None)


def test_user_model_gets_every_head_and_freeze_bn_without_batchnorm_warns(user_models):
    with pytest.warns(UserWarning, match="has no BatchNormalization layer; nothing frozen"):
        clf = build_model(Config(model=f"{user_models}:tiny", freeze_bn=True), (8, 8, 1), 3)
    assert tuple(clf.output.shape) == (None, 3) and backbone_of(clf).output.shape[-1] == 16
    emb = build_model(Config(model=f"{user_models}:tiny", loss="triplet"), (8, 8, 1), 3)
    assert tuple(emb.output.shape) == (None, 128)  # embedding_dim=none on a backbone: 128
    proxies = build_model(Config(model=f"{user_models}:tiny", loss="proxy_anchor"), (8, 8, 1), 3)
    assert tuple(proxies.output.shape) == (None, 3)


def test_readme_user_model_takes_a_classifier_and_proxies(tmp_path, monkeypatch):
    """The README's my_models.py, as written, under another module name."""
    section = (REPO_ROOT / "README.md").read_text().split(
        "## Models: backbones by name", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    (tmp_path / "readme_models.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        clf = build_model(Config(model="readme_models:tiny"), (8, 8, 1), 3)
        proxies = build_model(Config(model="readme_models:tiny", loss="arcface"), (8, 8, 1), 3)
    finally:
        sys.modules.pop("readme_models", None)
    assert tuple(clf.output.shape) == (None, 3) and tuple(proxies.output.shape) == (None, 3)
    assert tuple(backbone_of(clf).output.shape) == (None, 64)  # the 4×4×64 map, pooled


def test_bad_model_inputs_exit_2_with_the_choices_and_create_no_run(
        tmp_path, mlflow_store, user_models, capsys):
    wrong = tmp_path / "resnet32.weights.h5"
    backbone("resnet32", (8, 8, 1)).save_weights(wrong)
    base = ["dataset=digits", "epochs=2", f"checkpoint_dir={tmp_path / 'ckpt'}"]
    cases = [
        (["model=resnt20"], "unknown model 'resnt20' (did you mean 'resnet20'?); known models: "
                            "small_cnn, resnet20"),
        (["model=resnet50"], "model=resnet50 needs input (height, width, channels) with height, "
                             "width >= 32; got (8, 8, 1) (valid: image_size >= 32"),
        (["model=resnet50", "image_size=16"], "image_size=16 is below the minimum input of "
                                              "model resnet50; valid: image_size >= 32"),
        (["model=no_such_module:net"], "model=no_such_module:net: module 'no_such_module' does "
                                       "not import (ModuleNotFoundError"),
        ([f"model={user_models}:missing"], "has no function 'missing'"),
        ([f"model={user_models}:not_a_model"], "returned int, not a keras.Model"),
        (["model=resnet20", f"pretrained={wrong}"], "is not a weight file of resnet20 on input "
                                                    "(8, 8, 1): layer stage"),
        (["pretrained=imagenet"], "model small_cnn has no imagenet weights; valid: none or a "
                                  "weight file (PATH); models with imagenet weights: resnet50"),
        (["pretrained=weights.bin"], "choose none, imagenet or the path of a .weights.h5 or "
                                     ".keras file"),
        (["loss=triplet", "warmup_epochs=1"], "model small_cnn with this loss has no head to "
                                              "train while its backbone is frozen"),
    ]
    for extra, message in cases:
        assert run_cli(train, base + extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err, (extra, err)
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_help_lists_the_models_without_importing_keras():
    code = ("import sys; from training.model_catalog import model_lines; "
            "print('\\n'.join(model_lines(20))); assert 'keras' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == catalog.names()
    assert "resnet20" in lines[1] and "0.27 M params" in lines[1] and "input >= 8×8" in lines[1]
    assert "23.59 M params" in lines[4] and "input >= 32×32, imagenet" in lines[4]


# --- end to end: protocol + pretrained file, interrupted in the warm-up, resumed exactly --


@pytest.mark.slow
def test_protocol_run_records_its_weights_and_resumes_exactly_inside_the_warmup(
        tiny, mlflow_store, tmp_path, monkeypatch):
    keras.utils.set_random_seed(5)
    weights = tmp_path / "start.weights.h5"
    backbone("resnet20", (8, 8, 1)).save_weights(weights)
    config = tiny(loss="ce", model="resnet20", pretrained=str(weights), epochs=3,
                  warmup_epochs=2, freeze_bn=True, head_lr_mult=10.0, optimizer="sgd",
                  weight_decay=5e-4, learning_rate=0.05, seed=3)
    reference = train(config)

    client = mlflow.MlflowClient()
    params = client.get_run(reference["run_id"]).data.params
    assert params["model.weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert params["model.weights_file"] == str(weights.resolve())
    assert params["model.backbone_params"] == str(catalog.find("resnet20").params - 288)  # 1 ch

    original = MlflowLogger.on_epoch_end

    def interrupt(self, epoch, logs=None):  # Ctrl-C after epoch 1's checkpoint
        if epoch == 0:
            raise KeyboardInterrupt
        original(self, epoch, logs)

    with monkeypatch.context() as patch:
        patch.setattr(MlflowLogger, "on_epoch_end", interrupt)
        with pytest.raises(KeyboardInterrupt) as caught:
            train(config)
    run_id = caught.value.losslab_run_id
    ckpt = Path(client.get_run(run_id).data.tags["losslab.checkpoint_dir"])
    assert json.loads((ckpt / "state.json").read_text())["epoch"] == 1
    resumed = train(config.replace(resume=run_id))

    assert resumed["run_id"] == run_id
    for key in ("train/loss", "train/lr", "val/loss", "val/accuracy"):
        got = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        want = sorted((m.step, m.value)
                      for m in client.get_metric_history(reference["run_id"], key))
        assert got == want and [s for s, _ in got] == [1, 2, 3], key
    for key in (k for k in reference if k.startswith(("accuracy", "balanced"))):
        assert resumed[key] == reference[key], key
