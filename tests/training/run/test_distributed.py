"""tf.distribute: mirrored on 2 logical CPUs equals one device; P×K slices (the local
multi-worker launcher: tests/training/test_workers.py).

Logical devices must be configured before TensorFlow initialises, and each multi-worker
process needs its own TF_CONFIG, so the end-to-end cases run in subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import numpy as np
import pytest

from tests.conftest import REPO_ROOT

# Runs in a fresh interpreter with the CPU split in two; prints one JSON line.
MIRRORED_SCRIPT = r"""
import json, sys
import keras, numpy as np, tensorflow as tf
from training.run import evaluate, runtime
from training.run.builders import build_loss, build_model, build_optimizer, build_train_data
from training.config import Config, ConfigError
from training.data import load_splits
from training.train import train

out = {}
# SGD, not Adam: Adam divides by sqrt(v), so near-zero gradients turn float round-off between
# an all-reduced and a single-device sum into O(lr) weight differences within a few steps.
cfg = Config(dataset="digits", batch_size=64, optimizer="sgd", learning_rate=0.02,
             lr_schedule="constant", strategy="mirrored", devices=2)
mirrored = runtime.setup(cfg)
single = tf.distribute.get_strategy()
out["replicas"] = mirrored.num_replicas_in_sync
splits = load_splits("digits", "classification", seed=0)
x, y = splits.x_train[:1024], splits.y_train[:1024]  # 16 full batches

class StepLoss(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.values = []
    def on_train_batch_end(self, batch, logs=None):
        self.values.append(float(logs["loss"]))

def fit(strategy, config, x, y, init, metrics=(), first_steps=0):
    # Build, compile, fit one epoch. With first_steps: fit that many steps first and also
    # return the weights they give; the epoch that follows is then the pipeline's epoch 1.
    keras.utils.set_random_seed(0)
    data, steps = build_train_data(config, x, y)
    loss = build_loss(config, y, splits.num_classes)
    with strategy.scope():
        model = build_model(config, x.shape[1:], splits.num_classes)
        runtime.sync_batch_norm(model, strategy)
        if config.task == "classification":
            model.get_layer("dropout").rate = 0.0  # dropout masks differ per replica
        model.set_weights(init)
        model.compile(optimizer=build_optimizer(config, steps), loss=loss, metrics=list(metrics))
    early = None
    if first_steps:
        model.fit(data, epochs=1, steps_per_epoch=first_steps, verbose=0)
        early = model.get_weights()
    record = StepLoss()
    history = model.fit(data, epochs=2 if first_steps else 1, initial_epoch=1 if first_steps
                        else 0, steps_per_epoch=steps, verbose=0, callbacks=[record])
    return model, loss, record.values, {k: v[-1] for k, v in history.history.items()}, early

def rel_diff(first, second):
    # Per tensor, relative to its largest entry (BatchNorm moving means sit near 0).
    return [float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-6))
            for a, b in zip(first, second)]

# --- same global batches, one device vs two replicas -------------------------------------
with single.scope():
    init = build_model(cfg, x.shape[1:], splits.num_classes).get_weights()
early, final = {}, {}
for name, strategy in (("one", single), ("two", mirrored)):
    model, loss, steps, _, early[name] = fit(strategy, cfg, x, y, init, first_steps=2)
    scores = evaluate.classification_scores(model, loss, splits.x_val, splits.y_val, 10)[0]
    out[name] = {"steps": steps, "val": scores}
    final[name] = model.get_weights()
out["weights_rel_diff_2_steps"] = rel_diff(early["one"], early["two"])
out["weights_rel_diff_18_steps"] = rel_diff(final["one"], final["two"])

# --- BatchNorm statistics: without sync each replica normalises its own half ------------
batch = x[:64]
with single.scope():
    ref_model = build_model(cfg, x.shape[1:], 10)
ref_model.set_weights(init)
ref_model.get_layer("dropout").rate = 0.0
reference = ref_model(batch, training=True).numpy()
for sync in (True, False):
    with mirrored.scope():
        model = build_model(cfg, x.shape[1:], 10)
        if sync:
            runtime.sync_batch_norm(model, mirrored)
    model.set_weights(init)
    model.get_layer("dropout").rate = 0.0
    halves = next(iter(mirrored.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(batch))))
    step = tf.function(lambda b: mirrored.run(lambda t: model(t, training=True), args=(b,)))
    per_replica = step(halves)
    joined = np.concatenate([v.numpy() for v in mirrored.experimental_local_results(per_replica)])
    out[f"forward_diff_sync_{sync}"] = float(np.abs(joined - reference).max())

# --- P×K batches: what the metric loss sees on each replica ------------------------------
K = 4
def slice_rows(y_true, y_pred):
    return tf.cast(tf.shape(y_true)[0], "float32")
def whole_groups(y_true, y_pred):
    groups = tf.reshape(y_true, (-1, K))  # K-aligned rows of this replica's slice
    return tf.cast(tf.reduce_all(groups == groups[:, :1]), "float32")
pk = cfg.replace(loss="triplet", batch_size=4 * K, samples_per_class=K, loss_args={"mining": "hard"},
                 strategy="mirrored")
rsplits = load_splits("digits", "retrieval", seed=0)
with single.scope():
    pk_init = build_model(pk, rsplits.x_train.shape[1:], 10).get_weights()
for name, strategy in (("one", single), ("two", mirrored)):
    _, _, _, logs, _ = fit(strategy, pk, rsplits.x_train, rsplits.y_train, pk_init,
                           metrics=[slice_rows, whole_groups])
    out["pk_" + name] = logs
try:
    runtime.check_batch_split(pk.replace(batch_size=3 * K), 2)
except ConfigError as exc:
    out["pk_odd_error"] = str(exc)

# --- the trainer itself under strategy=mirrored -------------------------------------------
result = train(pk.replace(epochs=1, checkpoint_dir=sys.argv[1], loss_args={"mining": "semi-hard"}))
out["train_run_id"] = result["run_id"]
print("RESULT " + json.dumps(out))
"""


def _run(args, env_extra, timeout):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env_extra}
    return subprocess.run(
        args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_mirrored_two_cpus_matches_one_device(tmp_path, mlflow_store):
    proc = _run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path / "ck")],
        {"MLFLOW_TRACKING_URI": mlflow_store},
        timeout=600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(lines[-1].removeprefix("RESULT "))
    assert out["replicas"] == 2

    # Same global batches and weights: the running loss after every step, the final weights
    # and the validation scores agree up to float round-off (sums in a different order).
    one, two = out["one"], out["two"]
    assert len(one["steps"]) == len(two["steps"]) == 16
    np.testing.assert_allclose(two["steps"], one["steps"], rtol=1e-4)
    # Weights agree to round-off after 2 steps; over 18 SGD-with-momentum steps through
    # BatchNorm that round-off compounds (measured ~1e-2 of a tensor's largest entry).
    assert max(out["weights_rel_diff_2_steps"]) < 1e-4, out["weights_rel_diff_2_steps"]
    assert max(out["weights_rel_diff_18_steps"]) < 5e-2, out["weights_rel_diff_18_steps"]
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert two["val"][key] == pytest.approx(one["val"][key], abs=1 / 144), key
    assert two["val"]["loss"] == pytest.approx(one["val"]["loss"], rel=1e-2)
    assert two["val"]["ece"] == pytest.approx(one["val"]["ece"], abs=1e-2)
    # Why the sync matters: per-replica BatchNorm statistics change the forward pass itself.
    assert out["forward_diff_sync_True"] < 1e-4
    assert out["forward_diff_sync_False"] > 1e-2

    # P×K = 4×4: one device sees the 16 rows; each of 2 replicas sees 8 = 2 whole K-groups.
    assert out["pk_one"]["slice_rows"] == pytest.approx(16)
    assert out["pk_two"]["slice_rows"] == pytest.approx(8)
    assert out["pk_one"]["whole_groups"] == out["pk_two"]["whole_groups"] == pytest.approx(1)
    assert "P must be a multiple of 2" in out["pk_odd_error"]
    assert "batch_size a multiple of 8" in out["pk_odd_error"]

    run = mlflow.MlflowClient().get_run(out["train_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["strategy"] == "mirrored"
    assert np.isfinite(run.data.metrics["test/map_at_r"])
