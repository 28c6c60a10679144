"""SupConLoss (L_out) against the explicit loop over anchors and their positives."""

import inspect

import keras
import numpy as np
import pytest
import reference
from keras import ops

import losses
from losses import SupConLoss, supcon_loss


def unit(x):
    x = np.asarray(x, "float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def pk_batch(rng, p=3, k=4, dim=5):
    """P classes × K samples, shuffled, L2-normalised."""
    labels = rng.permutation(np.repeat(np.arange(p), k))
    return labels, unit(rng.normal(size=(p * k, dim)))


def random_batch(rng, size=12, classes=5, dim=5):
    """Random labels: some anchors have no positive and do not count."""
    return rng.integers(0, classes, size=size), unit(rng.normal(size=(size, dim)))


TEMPERATURES = [0.05, 0.1, 0.5, 1.0]


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("make", [pk_batch, random_batch], ids=["PxK", "random-labels"])
def test_matches_reference(temperature, make, rng):
    for _ in range(3):
        labels, emb = make(rng)
        got = float(SupConLoss(temperature)(labels, emb))
        want = reference.supcon(labels, emb, temperature)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_matches_the_mean_over_positive_pairs_of_a_full_log_softmax(rng):
    # A second, matrix-form reading of L_out: log-softmax of each row with the diagonal
    # removed, averaged over each anchor's positives, then over anchors with a positive.
    labels, emb = random_batch(rng, size=10, classes=3)
    s = emb.astype("float64") @ emb.T.astype("float64") / 0.2
    np.fill_diagonal(s, -np.inf)
    log_prob = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    same = (labels[:, None] == labels[None, :]) & ~np.eye(10, dtype=bool)
    has = same.any(axis=1)
    per = -np.where(same, log_prob, 0).sum(axis=1)[has] / same.sum(axis=1)[has]
    assert float(SupConLoss(0.2)(labels, emb)) == pytest.approx(per.mean(), rel=1e-5)


def test_hand_computed_value():
    # Four unit vectors at right angles, classes {0, 1} and {2, 3}: every anchor has its
    # positive and one negative at S = 0 and one negative at S = −1.
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], "float32")
    want = np.log(2.0 + np.exp(-10.0))
    assert float(SupConLoss(0.1)(np.array([0, 0, 1, 1]), emb)) == pytest.approx(want, rel=1e-6)


def test_reduction_none_gives_per_anchor_shares(rng):
    labels, emb = random_batch(rng)
    shares = ops.convert_to_numpy(SupConLoss(reduction="none")(labels, emb))
    assert shares.shape == (12,)
    terms = reference.supcon_terms(labels, emb)
    assert 0 < len(terms) < 12
    want = np.array([terms.get(i, 0.0) for i in range(12)]) * 12 / len(terms)
    np.testing.assert_allclose(shares, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(shares.mean(), reference.supcon(labels, emb), rtol=1e-4)


def test_sample_weight_weights_anchor_shares(rng):
    labels, emb = pk_batch(rng)
    shares = ops.convert_to_numpy(SupConLoss(reduction="none")(labels, emb))
    weights = rng.uniform(size=len(labels)).astype("float32")
    got = float(SupConLoss()(labels, emb, sample_weight=weights))
    np.testing.assert_allclose(got, np.sum(shares * weights) / len(labels), rtol=1e-5)


def test_gradient_matches_finite_differences(grad, rng):
    labels, emb = random_batch(rng, size=7, classes=3, dim=3)
    _, got = grad(lambda x: ops.mean(supcon_loss(labels, x, 0.5)), emb)
    want = reference.numeric_gradient(lambda x: reference.supcon(labels, x, 0.5), emb)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("temperature", [0.01, 0.001])
def test_small_temperature_is_stable(temperature, grad, rng):
    # S / τ up to 1000: a naive softmax overflows float32 (e^89 already does).
    labels, emb = pk_batch(rng)
    value, g = grad(lambda x: SupConLoss(temperature)(labels, x), emb)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    np.testing.assert_allclose(value, reference.supcon(labels, emb, temperature), rtol=1e-4)


@pytest.mark.parametrize(
    "labels", [[3, 3, 3, 3, 3], [0, 1, 2, 3, 4], [7]], ids=["one-class", "all-distinct", "B=1"]
)
def test_nothing_to_learn_gives_exactly_zero(labels, grad, rng):
    emb = unit(rng.normal(size=(len(labels), 3)))
    value, g = grad(lambda x: SupConLoss()(np.array(labels), x), emb)
    assert float(value) == 0.0
    assert np.all(g == 0)


def test_identical_embeddings_give_log_of_the_other_count(grad):
    # Every S = 1: each anchor's softmax is uniform over the B − 1 others.
    labels = np.array([0, 0, 0, 1, 1, 1])
    value, g = grad(lambda x: SupConLoss()(labels, x), np.ones((6, 3), "float32"))
    assert float(value) == pytest.approx(np.log(5.0), rel=1e-5)
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize(
    "emb",
    [
        np.zeros((6, 3)),  # zero rows: every S = 0
        np.array([[1.0, 0, 0], [-1.0, 0, 0]] * 3),  # cosines exactly ±1
        np.array([[1.0, 0, 0]] * 3 + [[-1.0, 0, 0]] * 3),  # classes antipodal
    ],
    ids=["zero", "alternating-antipodal", "antipodal-classes"],
)
def test_degenerate_embeddings_match_reference_with_finite_gradient(emb, grad):
    labels = np.array([0, 0, 0, 1, 1, 1])
    emb = emb.astype("float32")
    value, g = grad(lambda x: SupConLoss()(labels, x), emb)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    np.testing.assert_allclose(value, reference.supcon(labels, emb), rtol=1e-4, atol=1e-5)


def test_label_layouts_agree(rng):
    labels, emb = pk_batch(rng)
    loss = SupConLoss()
    want = float(loss(labels, emb))
    assert float(loss(labels[:, None], emb)) == pytest.approx(want)
    assert float(loss(np.eye(3)[labels], emb)) == pytest.approx(want)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_are_computed_in_float32(dtype, rng):
    labels, emb = pk_batch(rng)
    low = ops.cast(emb, dtype)
    got = SupConLoss()(labels, low)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    np.testing.assert_allclose(
        float(got), float(SupConLoss()(labels, ops.cast(low, "float32"))), rtol=1e-6
    )


def test_memory_is_quadratic():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 128, size=2048)
    value = float(SupConLoss()(labels, unit(rng.normal(size=(2048, 16)))))
    assert np.isfinite(value) and value > 0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"temperature": 0.0}, "temperature=0.0"),
        ({"temperature": -0.1}, "temperature=-0.1"),
        ({"temperature": "warm"}, "temperature='warm'"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SupConLoss(**kwargs)


def test_config_keys_are_init_args_and_round_trip():
    loss = SupConLoss(temperature=0.07)
    config = loss.get_config()
    init_args = set(inspect.signature(SupConLoss.__init__).parameters) - {"self"}
    assert set(config) - {"dtype"} == init_args - {"dtype"}  # dtype None is not stored
    assert SupConLoss.from_config(config).get_config() == config
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is SupConLoss and restored.get_config() == config


def test_registry_entry_builds_the_class():
    entry = losses.spec("supcon")
    assert entry.task == "retrieval" and entry.output == "embedding"
    loss = entry.build({"temperature": 0.2})
    assert type(loss) is SupConLoss and loss.temperature == 0.2
    defaults = {a.name: a.default for a in entry.args}
    signature = inspect.signature(SupConLoss.__init__).parameters
    assert defaults == {name: signature[name].default for name in defaults}


@pytest.mark.slow
def test_compile_fit_save_and_reload_without_custom_objects(tmp_path, rng):
    x = rng.normal(size=(24, 4)).astype("float32")
    y = np.repeat(np.arange(3), 8)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.UnitNormalization()]
    )
    loss = SupConLoss(temperature=0.2)
    model.compile(optimizer="sgd", loss=loss)
    # batch_size 16 leaves a last batch of 8: the traced function sees both sizes.
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(reloaded.loss) is SupConLoss
    assert reloaded.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(
        reloaded.evaluate(x, y, batch_size=24, verbose=0),
        model.evaluate(x, y, batch_size=24, verbose=0),
        rtol=1e-5,
    )
