"""Mixed precision: every loss stays finite, in float32, under each `precision=` policy.

Runs on CPU: TensorFlow has float16 and bfloat16 kernels for every op the two models use
(measured here, 2 loaded cores: an eager forward+backward of small_cnn on 8×8 inputs takes
1–4 s under either policy, about as long as float32; compile+fit of 4 steps 10–25 s), so
nothing is skipped. The forward+backward cases cover every loss × policy; the fit cases add
the LossScaleOptimizer path of mixed_float16 and one bfloat16 metric loss.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import losses
from training.config import PRECISIONS, Config
from training.run import runtime
from training.run.builders import build_loss, build_model, build_optimizer

B, K, C = 16, 4, 10  # batch, images per class (P×K layout for metric losses), classes
COMPUTE = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


@pytest.fixture(autouse=True)
def _restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _batch(seed: int = 0):
    """Images (B, 8, 8, 1) in [0, 1]; labels 0,0,0,0,1,1,1,1,... (P=4 classes × K=4)."""
    rng = np.random.default_rng(seed)
    x = rng.random((B, 8, 8, 1), dtype=np.float32)
    y = np.repeat(np.arange(B // K), K).astype(np.int32)
    return x, y


def _config(loss: str, precision: str) -> Config:
    return Config(loss=loss, precision=precision, batch_size=B, samples_per_class=K, epochs=1)


# One loss per kind of model output (dense logits, cosine logits, embedding, proxy cosines):
# the model side of the policy; every loss is checked on half-precision inputs below.
BY_OUTPUT = sorted({s.output: s.name for s in reversed(losses.specs())}.values())


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("loss_name", BY_OUTPUT)
def test_forward_backward_is_finite(loss_name, precision):
    """The template's model and loss under the policy: float32 output and loss, finite loss
    and gradients, and the hidden layers really compute in the policy's dtype."""
    config = _config(loss_name, precision)
    runtime.setup(config)
    x, y = _batch()
    loss_fn = build_loss(config, np.tile(np.arange(C), 3), C)
    model = build_model(config, x.shape[1:], C)

    conv = model.get_layer("trunk").get_layer("block1_conv1")
    assert conv.compute_dtype == COMPUTE[precision]
    assert conv.variable_dtype == "float32"  # master weights stay float32
    with tf.GradientTape() as tape:
        outputs = model(x, training=True)
        value = loss_fn(y, outputs)
    grads = tape.gradient(value, model.trainable_variables)

    assert outputs.dtype == tf.float32  # last layer float32 under every policy
    assert value.dtype == tf.float32
    assert np.isfinite(value.numpy()) and value.numpy() > 0
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("loss_name", losses.names())
def test_loss_of_half_precision_outputs_is_finite(loss_name, precision):
    """Outputs handed over in the policy's compute dtype with magnitudes whose squares or
    exponentials overflow float16 (65504): the loss computes in float32 and stays finite."""
    config = _config(loss_name, precision)
    loss_fn = build_loss(config, np.tile(np.arange(C), 3), C)
    _, y = _batch()
    rng = np.random.default_rng(1)
    spec = losses.spec(loss_name)
    if spec.output in ("logits", "cosine_logits", "proxy_cosines"):
        outputs = rng.choice([-3e4, 3e4], size=(B, C))  # exp(3e4) and (2·3e4)² overflow
    elif spec.task == "regression":  # a head of the loss's width; (3e4)² overflows float16
        outputs = rng.choice([-3e4, 3e4], size=(B, losses.output_units(spec)))
    else:
        outputs = rng.normal(scale=300.0, size=(B, 64))  # ‖a − b‖² ≈ 1e7 > 65504
    half = tf.constant(outputs, dtype=COMPUTE[precision])
    value = loss_fn(y, half)
    assert value.dtype == tf.float32
    assert np.isfinite(value.numpy())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("loss_name", "precision"), [("focal", "mixed_float16"), ("triplet", "mixed_bfloat16")]
)
def test_a_few_training_steps_stay_finite(loss_name, precision):
    """compile + fit as the trainer does: under mixed_float16 Keras wraps the optimiser in a
    LossScaleOptimizer (dynamic loss scaling); weights stay float32 and finite."""
    config = _config(loss_name, precision)
    runtime.setup(config)
    x, y = _batch()
    loss_fn = build_loss(config, np.tile(np.arange(C), 3), C)
    model = build_model(config, x.shape[1:], C)
    model.compile(optimizer=build_optimizer(config, 4), loss=loss_fn)
    history = model.fit(x, y, batch_size=B, epochs=4, shuffle=False, verbose=0)

    scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (precision == "mixed_float16")
    assert np.isfinite(history.history["loss"]).all()
    assert all(w.dtype == "float32" for w in model.trainable_weights)
    assert all(np.isfinite(w).all() for w in model.get_weights())
