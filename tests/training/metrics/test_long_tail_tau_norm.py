"""τ-normalisation (Kang et al. 2020) against NumPy loops on hand-made weights, and through a
Keras dense head: τ = 0 is the plain model without its bias, τ is chosen on val only."""

import keras
import numpy as np
import pytest

from training.metrics.long_tail import (
    TAU_GRID,
    balanced_accuracy,
    choose_tau,
    tau_normalized_kernel,
)
from training.run import evaluate


def loop_kernel(kernel, tau):
    """w_c / ‖w_c‖^τ, one column at a time."""
    out = np.zeros_like(kernel, dtype=np.float64)
    for c in range(kernel.shape[1]):
        norm = sum(float(v) ** 2 for v in kernel[:, c]) ** 0.5
        out[:, c] = [float(v) / norm**tau for v in kernel[:, c]]
    return out


def loop_balanced_accuracy(logits, labels):
    recalls = []
    for c in sorted(set(labels.tolist())):
        rows = [i for i in range(len(labels)) if labels[i] == c]
        recalls.append(sum(int(np.argmax(logits[i]) == c) for i in rows) / len(rows))
    return sum(recalls) / len(recalls)


# Two classes in 2-d: the head class's vector is 3 times longer, so plain logits pull every
# ambiguous feature to class 0; τ = 1 makes both unit vectors.
KERNEL = np.array([[3.0, 0.0], [0.0, 1.0]])
FEATURES = np.array([[1.0, 1.0], [1.0, 2.0], [0.5, 1.0], [2.0, 1.0], [1.0, 0.2]])
LABELS = np.array([1, 1, 1, 0, 0])


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_kernel_matches_the_loop(tau):
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(6, 4)) * np.array([4.0, 2.0, 1.0, 0.3])
    np.testing.assert_allclose(tau_normalized_kernel(kernel, tau), loop_kernel(kernel, tau),
                               rtol=1e-12)


def test_hand_made_weights():
    # τ = 0: logits (3f₀, f₁): [1,1] → 0, [1,2] → 0 (3 > 2), [0.5,1] → 0 (1.5 > 1): class-1
    # recall 0, class-0 recall 1 → ½. τ = 1: (f₀, f₁): [1,1] tie → 0, [1,2] → 1, [0.5,1] → 1,
    # [2,1] → 0, [1,0.2] → 0: recalls ⅔ and 1 → ⅚.
    plain = FEATURES @ tau_normalized_kernel(KERNEL, 0.0)
    assert balanced_accuracy(plain, LABELS) == pytest.approx(0.5)
    unit = FEATURES @ tau_normalized_kernel(KERNEL, 1.0)
    assert balanced_accuracy(unit, LABELS) == pytest.approx(5 / 6)
    np.testing.assert_allclose(unit, FEATURES)  # both columns unit vectors: identity kernel


def test_choose_tau_is_the_first_best_of_the_grid():
    scores = [loop_balanced_accuracy(FEATURES @ loop_kernel(KERNEL, t), LABELS) for t in TAU_GRID]
    want = TAU_GRID[int(np.argmax(scores))]  # argmax: the first of equal scores
    tau, score = choose_tau(FEATURES, LABELS, KERNEL)
    assert (tau, score) == (pytest.approx(want), pytest.approx(max(scores)))
    assert TAU_GRID[0] == 0.0 and TAU_GRID[-1] == 2.0 and len(TAU_GRID) == 21


def dense_model(kernel, bias):
    inputs = keras.Input((kernel.shape[0],))
    hidden = keras.layers.Activation("linear")(inputs)
    dense = keras.layers.Dense(kernel.shape[1], name="logits")
    model = keras.Model(inputs, dense(hidden))
    dense.set_weights([kernel.astype("float32"), bias.astype("float32")])
    return model


def test_tau_zero_is_the_plain_model_without_bias():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(5, 3))
    x = rng.normal(size=(40, 5)).astype("float32")
    model = dense_model(kernel, np.zeros(3))
    pair, head = evaluate.dense_head(model)
    features, logits = evaluate.features_and_logits(pair, x)
    np.testing.assert_allclose(features @ tau_normalized_kernel(
        np.asarray(head.kernel), 0.0), evaluate.predict(model, x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits, evaluate.predict(model, x), rtol=1e-6)


def test_classification_scores_choose_tau_on_val_and_score_test():
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(4, 3)) * np.array([3.0, 1.0, 0.5])
    bias = np.array([0.5, 0.0, -0.5])
    model = dense_model(kernel, bias)
    x_val, y_val = rng.normal(size=(60, 4)).astype("float32"), rng.integers(0, 3, 60)
    x, y = rng.normal(size=(50, 4)).astype("float32"), rng.integers(0, 3, 50)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    scores, _, _ = evaluate.classification_scores(model, loss, x, y, 3, np.array([50, 10, 2]),
                                                  tau_from=(x_val, y_val))
    scores_val = [loop_balanced_accuracy(x_val @ loop_kernel(kernel, t), y_val) for t in TAU_GRID]
    tau = TAU_GRID[int(np.argmax(scores_val))]
    assert scores["tau_norm_tau"] == pytest.approx(tau)
    want = loop_balanced_accuracy(x @ loop_kernel(kernel, tau), y)
    assert scores["balanced_accuracy_tau_norm"] == pytest.approx(want)


def test_no_tau_norm_for_a_cosine_head():
    import losses

    inputs = keras.Input((4,))
    model = keras.Model(inputs, losses.ProxyHead(3, name="logits")(inputs))
    x, y = np.ones((6, 4), "float32"), np.array([0, 1, 2, 0, 1, 2])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    scores, _, _ = evaluate.classification_scores(model, loss, x, y, 3, np.array([5, 3, 1]))
    assert "balanced_accuracy_tau_norm" not in scores
