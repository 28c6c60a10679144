"""training.run.runtime: setup order and errors, jit_compile, batch splits, BatchNorm sync."""

from __future__ import annotations

import json
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import embedding_net, small_cnn
from training.config import Config, ConfigError
from training.data import classification_dataset
from training.run import runtime


@pytest.fixture(autouse=True)
def _restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), ("true", True),
                                                 ("false", False)])
def test_jit_compile_is_passed_to_compile(value, expected):
    assert runtime.jit_compile(Config(jit_compile=value)) == expected


def test_auto_jit_is_xla_off_on_cpu_only_tensorflow():
    """`auto` leaves the choice to Keras: XLA only when TensorFlow sees an accelerator
    (measured slower on CPU for small_cnn: benchmarks/train.py)."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(loss="mse", jit_compile=runtime.jit_compile(Config()))
    has_accelerator = any(d.device_type != "CPU" for d in tf.config.list_physical_devices())
    assert model.jit_compile is has_accelerator


def test_setup_sets_policy_and_returns_the_default_strategy():
    strategy = runtime.setup(Config(precision="mixed_bfloat16"))
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert runtime.is_chief(strategy)


@pytest.mark.parametrize("strategy", ["none", "multi_worker"])
def test_devices_only_with_mirrored(strategy):
    with pytest.raises(ConfigError, match="devices=2 only applies to strategy=mirrored"):
        runtime.setup(Config(strategy=strategy, devices=2))


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG.*python -m training.workers workers=2 key=value"):
        runtime.setup(Config(strategy="multi_worker"))


@pytest.mark.parametrize("raw", [
    "not json",
    json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}}),  # no task
    json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}),
])
def test_malformed_tf_config_is_named(monkeypatch, raw):
    monkeypatch.setenv("TF_CONFIG", raw)
    with pytest.raises(ConfigError, match="TF_CONFIG=.* is not valid"):
        runtime.cluster_and_task()


def test_tf_config_is_read(monkeypatch):
    spec = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
            "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(spec))
    assert runtime.cluster_and_task() == (spec["cluster"], spec["task"])


def test_split_cpu_after_tensorflow_started_is_a_clear_error():
    have = len(tf.config.list_logical_devices("CPU"))  # initialises TF's devices
    with pytest.raises(runtime.DeviceSetupError, match="start a fresh process"):
        runtime.split_cpu(have + 1)
    assert len(runtime.split_cpu(have)) == have  # what the process already has is fine


def test_batch_must_split_into_whole_k_groups():
    pk = Config(loss="triplet", batch_size=24, samples_per_class=4)  # P = 6
    runtime.check_batch_split(pk, 2)
    runtime.check_batch_split(pk, 3)
    with pytest.raises(ConfigError, match="P must be a multiple of 4.*multiple of 16"):
        runtime.check_batch_split(pk, 4)
    runtime.check_batch_split(Config(batch_size=63), 1)
    with pytest.raises(ConfigError, match="batch_size=63 does not split evenly over 2"):
        runtime.check_batch_split(Config(batch_size=63), 2)


@pytest.mark.parametrize("build", [lambda: small_cnn((8, 8, 1), 10),
                                   lambda: embedding_net((8, 8, 1), 8)])
def test_sync_batch_norm_reaches_nested_layers(build):
    model = build()
    norms = [layer for layer in model.get_layer("trunk").layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 6
    runtime.sync_batch_norm(model, types.SimpleNamespace(num_replicas_in_sync=1))
    assert not any(layer.synchronized for layer in norms)
    runtime.sync_batch_norm(model, types.SimpleNamespace(num_replicas_in_sync=2))
    assert all(layer.synchronized for layer in norms)
    assert model.get_layer("trunk").get_layer("block1_bn1").get_config()["synchronized"]


def test_shard_by_data_sets_the_policy():
    ds = classification_dataset(np.zeros((4, 1), "float32"), [0, 1, 0, 1], 2, seed=0)
    policy = runtime.shard_by_data(ds).options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA
