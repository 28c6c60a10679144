"""Backend-agnostic helpers for the loss tests (they also run under JAX and PyTorch)."""

import os
import sys

import keras
import numpy as np
import pytest

# `import reference` from the test modules, whatever pytest's import mode.
sys.path.insert(0, os.path.dirname(__file__))


def value_and_grad(fn, x):
    """(fn(x), d fn / d x) as NumPy, for a scalar-valued fn of one tensor, on any backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = fn(x)
        grad = tape.gradient(value, x)
    elif backend == "jax":
        import jax

        value, grad = jax.value_and_grad(fn)(keras.ops.convert_to_tensor(x))
    elif backend == "torch":
        import torch

        x = torch.tensor(np.asarray(x), requires_grad=True)
        value = fn(x)
        value.backward()
        grad = x.grad
    else:
        raise ValueError(f"Unsupported backend {backend!r}: expected tensorflow, jax or torch.")
    return keras.ops.convert_to_numpy(value), keras.ops.convert_to_numpy(grad)


@pytest.fixture
def grad():
    """The `value_and_grad(fn, x)` helper as a fixture."""
    return value_and_grad


@pytest.fixture
def finite_per_sample(grad):
    """`finite_per_sample(loss, labels, y_pred)`: the values of a `reduction="none"` loss as
    NumPy, after checking that they and the gradient of their sum are finite."""

    def check(loss, labels, y_pred):
        _, g = grad(lambda x: keras.ops.sum(loss(labels, x)), y_pred)
        values = keras.ops.convert_to_numpy(loss(labels, y_pred))
        assert np.all(np.isfinite(values)) and np.all(np.isfinite(g)), (values, g)
        return values

    return check


@pytest.fixture
def rng():
    return np.random.default_rng(0)
