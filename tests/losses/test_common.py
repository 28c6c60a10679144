"""The checks every loss gets, run once per registry entry (`losses.specs()`): config round
trip, reduction="none", sample weights, float16/bfloat16 inputs, label layouts, a degenerate
batch, and compile/fit/save/reload. What only one loss has (its loop reference, hand-computed
values, Keras equalities, its own edge cases) stays in tests/losses/test_<loss>.py.

Inputs follow `spec.output`: logits (B, C); cosine_logits and proxy_cosines in [−1, 1];
embedding rows L2-normalised, with P × K labels; regression heads (B, `output_units`) against
(B,) float targets. Losses built from the training split get
`TRAIN` (imbalanced, C classes)."""

import inspect

import keras
import numpy as np
import pytest
from batches import (
    DEGENERATE_EMBEDDINGS,
    DEGENERATE_LABELS,
    cosines_and_labels,
    degenerate_regression,
    logits_and_labels,
    pk_batch,
    targets_and_predictions,
)
from keras import ops

import losses

P, K = 3, 4
B = P * K
C = 4
TRAIN = np.repeat(np.arange(C), [8, 4, 2, 2])

ENTRIES = [(spec, {}) for spec in losses.specs()]
# Batch-all soft triplets have a hand-written gradient that no registry default reaches: they
# join the dtype and compiled checks (the config round trip sets every argument anyway).
WITH_ALL_SOFT = ENTRIES + [(losses.spec("triplet"), {"mining": "all", "soft": True})]


def case_id(case):
    spec, args = case
    return spec.name + "".join(f"[{k}={v}]" for k, v in args.items())


def numpy(x):
    return ops.convert_to_numpy(x)


def build(spec, args):
    """The entry's loss with `args`; from the training labels when it needs them."""
    return spec.build(args, labels=TRAIN, num_classes=C)


def with_config(loss, **changes):
    """A new loss of the same class, its config updated with `changes`."""
    return type(loss).from_config({**loss.get_config(), **changes})


def batch(spec, rng, args=None):
    """(labels, y_pred float32) for the entry's kind of input (with `args`: the head width of
    a quantile loss), and the one-hot width (None for regression targets)."""
    if spec.task == "regression":
        targets, y_pred = targets_and_predictions(rng, B, losses.output_units(spec, args))
        return targets, y_pred, None
    if spec.output == "embedding":
        labels, emb = pk_batch(rng, P, K)
        return labels, emb, P
    if spec.output == "logits":
        logits, labels = logits_and_labels(rng, B, C)
        return labels, logits, C
    cosines, labels = cosines_and_labels(rng, B, C)
    return labels, cosines, C


def per_sample(loss, labels, y_pred):
    """The loss of each sample (reduction="none"), as NumPy."""
    return numpy(with_config(loss, reduction="none")(labels, y_pred))


def loss_and_batch(case, rng):
    """(loss, labels, y_pred, one-hot width): the case's loss and a batch of its input kind."""
    spec, args = case
    return (build(spec, args), *batch(spec, rng, args))


def other_value(arg):
    """A valid value of `arg` other than its default, or None if none is found."""
    if arg.type is bool:
        return not arg.default
    if arg.type is tuple:
        candidates = [(0.25, 0.75)]
    elif arg.choices:
        candidates = list(reversed(arg.choices))
    elif arg.search is not None and arg.search[0] == "choice":
        candidates = list(arg.search[1])
    elif arg.search is not None:
        low, high = arg.search[1:]
        middle = (low + high) // 2 if arg.type is int else (low + high) / 2
        candidates = [middle, high, low]
    else:
        candidates = [0.5, 2.0, 1]
    for value in candidates:
        if value == arg.default:
            continue
        try:
            return arg.check(value)
        except losses.LossArgError:
            continue
    return None


@pytest.mark.parametrize("case", ENTRIES, ids=case_id)
def test_config_round_trip(case, rng):
    """Config keys are the constructor's arguments, and every value survives from_config and
    (de)serialize: each argument set away from its default, then name and reduction renamed
    and from_logits flipped. The restored loss computes the same values."""
    spec, args = case
    changed = {a.name: other_value(a) for a in spec.args if not a.trainer}
    changed = {name: value for name, value in changed.items() if value is not None}
    loss = build(spec, {**args, **changed})
    config = loss.get_config()
    init_args = set(inspect.signature(type(loss).__init__).parameters) - {"self"}
    assert set(config) - {"dtype"} == init_args - {"dtype"}  # dtype None is not stored
    for key, value in changed.items():
        if key in config:  # others (beta of cb_focal) shape a stored value instead
            assert config[key] == value, key
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss) and restored.get_config() == config
    labels, y_pred, _ = batch(spec, rng, {**args, **changed})
    y_true, y_pred = ops.convert_to_tensor(labels), ops.convert_to_tensor(y_pred)
    np.testing.assert_allclose(
        numpy(restored.call(y_true, y_pred)), numpy(loss.call(y_true, y_pred)), rtol=1e-6
    )
    config.update(name="renamed", reduction="sum")
    if "from_logits" in config:
        config["from_logits"] = not config["from_logits"]
    assert type(loss).from_config(config).get_config() == config


@pytest.mark.parametrize("case", ENTRIES, ids=case_id)
def test_reduction_none_gives_per_sample_shares(case, rng):
    loss, labels, y_pred, _ = loss_and_batch(case, rng)
    shares = per_sample(loss, labels, y_pred)
    assert shares.shape == (B,) and shares.dtype == np.float32
    assert np.all(np.isfinite(shares))
    np.testing.assert_allclose(float(loss(labels, y_pred)), shares.mean(), rtol=1e-6)
    total = float(with_config(loss, reduction="sum")(labels, y_pred))
    np.testing.assert_allclose(total, shares.sum(), rtol=1e-6)


@pytest.mark.parametrize("case", ENTRIES, ids=case_id)
def test_sample_weight_weights_the_per_sample_shares(case, rng):
    loss, labels, y_pred, _ = loss_and_batch(case, rng)
    shares = per_sample(loss, labels, y_pred)
    weights = rng.uniform(0.5, 2.0, size=B).astype("float32")
    weights[rng.permutation(B)[: B // 2]] = 0.0  # half the batch weighs nothing
    got = float(loss(labels, y_pred, sample_weight=weights))
    np.testing.assert_allclose(got, np.sum(shares * weights) / B, rtol=1e-5)
    ones = float(loss(labels, y_pred, sample_weight=np.ones(B, "float32")))
    np.testing.assert_allclose(ones, float(loss(labels, y_pred)), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", WITH_ALL_SOFT, ids=case_id)
def test_low_precision_inputs_are_computed_in_float32(case, dtype, rng):
    loss, labels, y_pred, _ = loss_and_batch(case, rng)
    low = ops.cast(y_pred, dtype)
    got, want = loss(labels, low), loss(labels, ops.cast(low, "float32"))  # same rounded inputs
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    assert np.isfinite(float(got))
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
    # Loss.__call__ casts to the loss dtype first; call() itself must compute in float32 too.
    per_sample = loss.call(ops.convert_to_tensor(labels), low)
    assert keras.backend.standardize_dtype(per_sample.dtype) == "float32"


@pytest.mark.parametrize("case", ENTRIES, ids=case_id)
def test_label_layouts_agree(case, rng):
    loss, labels, y_pred, width = loss_and_batch(case, rng)
    want = per_sample(loss, labels, y_pred)
    one_hot = [] if width is None else [np.eye(width, dtype="float32")[labels]]
    for layout in [labels[:, None], *one_hot]:
        np.testing.assert_allclose(per_sample(loss, layout, y_pred), want, rtol=1e-6)


def degenerate_batches(spec, args):
    """(labels, y_pred) pairs at the edges of each input kind: extreme or exactly ±1 values,
    identical rows, a single class, zero embeddings, regression errors of 0 and ±2e4."""
    output = spec.output
    if spec.task == "regression":
        return degenerate_regression(losses.output_units(spec, args))
    if output == "embedding":
        one_class = (np.full(6, 2), np.eye(6, 3))
        return [(DEGENERATE_LABELS, e) for e in DEGENERATE_EMBEDDINGS.values()] + [one_class]
    if output == "logits":
        extremes = [[1e4, 0, -1e4, 0], [-1e4, 1e4, 0, 0], [1e4] * 4, [-1e4, -1e4, -1e4, 1e4]]
    else:
        extremes = [[1, -1, 0, 0], [-1, 1, 1, -1], [1] * 4, [-1] * 4]  # cosines exactly ±1
    return [
        (np.array([0, 0, 1, 2]), np.array(extremes)),
        (np.full(4, 3), np.array(extremes)),  # one class
        (np.full(4, 3), np.array(extremes[2:3] * 4)),  # one class, identical rows
    ]


@pytest.mark.parametrize("case", ENTRIES, ids=case_id)
def test_finite_value_and_gradient_on_degenerate_batches(case, grad):
    spec, args = case
    loss = build(spec, args)
    for labels, y_pred in degenerate_batches(spec, args):
        value, g = grad(lambda x, labels=labels: loss(labels, x), y_pred.astype("float32"))
        assert np.isfinite(value) and np.all(np.isfinite(g)), (labels, y_pred, value, g)


def tiny_model(spec, args):
    """4 inputs → what the trainer puts before such a loss: a dense classifier, an
    L2-normalised embedding, cosines to learned class proxies (`losses.ProxyHead`), or a
    linear regression head of `output_units` columns."""
    keras.utils.set_random_seed(0)
    output = spec.output
    if spec.task == "regression":
        head = [keras.layers.Dense(losses.output_units(spec, args))]
    elif output == "logits":
        head = [keras.layers.Dense(C)]
    elif output == "embedding":
        head = [keras.layers.Dense(3), keras.layers.UnitNormalization()]
    else:
        head = [keras.layers.Dense(3), losses.ProxyHead(C)]
    return keras.Sequential([keras.Input((4,)), *head])


@pytest.mark.slow
@pytest.mark.parametrize("case", WITH_ALL_SOFT, ids=case_id)
def test_compile_fit_save_and_reload_without_custom_objects(case, tmp_path, rng):
    spec, args = case
    loss = build(spec, args)
    labels = np.concatenate([batch(spec, rng)[0], batch(spec, rng)[0][: B // 2]])
    x = rng.normal(size=(len(labels), 4)).astype("float32")
    model = tiny_model(spec, args)
    model.compile(optimizer="sgd", loss=loss)
    # One epoch, a full batch and a half one: the compiled step is traced once, and on
    # TensorFlow with an unknown batch size (the partial batch), as in training.
    history = model.fit(x, labels, batch_size=B, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")  # no custom_objects
    assert type(reloaded.loss) is type(loss)
    assert reloaded.loss.get_config() == loss.get_config()
    # The trained weights and the loss came back: the same value on the same batch.
    np.testing.assert_allclose(
        float(reloaded.loss(labels, reloaded(x))), float(loss(labels, model(x))), rtol=1e-6
    )
