"""MultiSimilarityLoss against the explicit loop over anchors and their (mined) pairs."""

import inspect

import keras
import numpy as np
import pytest
import reference
from keras import ops

import losses
from losses import MultiSimilarityLoss, multi_similarity_loss


def unit(x):
    x = np.asarray(x, "float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def pk_batch(rng, p=3, k=4, dim=5):
    """P classes × K samples, shuffled, L2-normalised."""
    labels = rng.permutation(np.repeat(np.arange(p), k))
    return labels, unit(rng.normal(size=(p * k, dim)))


def random_batch(rng, size=12, classes=4, dim=5):
    """Random labels: some anchors may have no positive."""
    return rng.integers(0, classes, size=size), unit(rng.normal(size=(size, dim)))


SETTINGS = [
    {},  # the defaults: α 2, β 50, base 0.5, ε 0.1, mining
    {"alpha": 1.0, "beta": 10.0, "base": 0.0, "epsilon": 0.2},
    {"alpha": 5.0, "beta": 80.0, "base": 0.3, "epsilon": 0.0},
    {"alpha": 2.0, "beta": 40.0, "base": 0.5, "epsilon": 0.1, "mining": False},
]


@pytest.mark.parametrize("kwargs", SETTINGS, ids=lambda k: str(k) or "defaults")
@pytest.mark.parametrize("make", [pk_batch, random_batch], ids=["PxK", "random-labels"])
def test_matches_reference(kwargs, make, rng):
    for _ in range(3):
        labels, emb = make(rng)
        got = float(MultiSimilarityLoss(**kwargs)(labels, emb))
        want = reference.multi_similarity(labels, emb, **kwargs)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_mining_drops_easy_pairs(rng):
    # Low-dimensional, tight clusters: many easy pairs, so mining changes the value.
    labels, _ = pk_batch(rng, 2, 4, 2)
    centres = np.array([[1.0, 0.0], [0.0, 1.0]])
    emb = unit(centres[labels] + 0.3 * rng.normal(size=(8, 2)))
    mined = reference.multi_similarity_terms(labels, emb, mining=True)
    full = reference.multi_similarity_terms(labels, emb, mining=False)
    assert mined != full
    for mining in [True, False]:
        got = float(MultiSimilarityLoss(mining=mining)(labels, emb))
        want = reference.multi_similarity(labels, emb, mining=mining)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_reduction_none_gives_each_anchor_its_term(rng):
    labels, emb = random_batch(rng, size=10, classes=4)
    shares = ops.convert_to_numpy(MultiSimilarityLoss(reduction="none")(labels, emb))
    assert shares.shape == (10,)
    terms = reference.multi_similarity_terms(labels, emb)
    want = np.array([terms.get(i, 0.0) for i in range(10)])
    np.testing.assert_allclose(shares, want, rtol=1e-4, atol=1e-6)
    assert shares.mean() == pytest.approx(float(MultiSimilarityLoss()(labels, emb)), rel=1e-6)


def test_sample_weight_weights_anchor_shares(rng):
    labels, emb = pk_batch(rng)
    shares = ops.convert_to_numpy(MultiSimilarityLoss(reduction="none")(labels, emb))
    weights = rng.uniform(size=len(labels)).astype("float32")
    got = float(MultiSimilarityLoss()(labels, emb, sample_weight=weights))
    np.testing.assert_allclose(got, np.sum(shares * weights) / len(labels), rtol=1e-5)


def test_hand_computed_value():
    # Four unit vectors at right angles, classes {0, 1} and {2, 3}: every anchor has its
    # positive at S = 0, one negative at S = 0 (kept) and one at S = −1 (mined away, since
    # −1 + 0.1 < 0). Each term: log(1 + e^{−2(0 − 0.5)})/2 + log(1 + e^{50(0 − 0.5)})/50.
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], "float32")
    want = np.log1p(np.e) / 2 + np.log1p(np.exp(-25.0)) / 50
    assert float(MultiSimilarityLoss()(np.array([0, 0, 1, 1]), emb)) == pytest.approx(want)
    # Unmined, the negative at −1 adds e^{50(−1.5)}: far below float32 resolution of 0.66.
    assert float(MultiSimilarityLoss(mining=False)(np.array([0, 0, 1, 1]), emb)) == (
        pytest.approx(want)
    )


def test_large_scales_do_not_overflow(grad, rng):
    # β(S − base) reaches 500 · 1.5 = 750: e^750 overflows float64, let alone float32.
    labels, emb = pk_batch(rng)
    kwargs = {"alpha": 100.0, "beta": 500.0, "base": -0.5}
    value, g = grad(lambda x: MultiSimilarityLoss(**kwargs)(labels, x), emb)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    np.testing.assert_allclose(value, reference.multi_similarity(labels, emb, **kwargs), rtol=1e-4)


def test_gradient_matches_finite_differences(grad, rng):
    labels, emb = pk_batch(rng, 2, 3, 3)
    emb = emb.astype("float64")
    kwargs = {"alpha": 2.0, "beta": 10.0, "base": 0.5, "epsilon": 0.1}
    _, got = grad(lambda x: ops.mean(multi_similarity_loss(labels, x, **kwargs)), emb)
    want = reference.numeric_gradient(
        lambda x: reference.multi_similarity(labels, x, **kwargs), emb
    )
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    "labels", [[3, 3, 3, 3, 3], [0, 1, 2, 3, 4]], ids=["one-class", "all-distinct"]
)
@pytest.mark.parametrize("mining", [True, False])
def test_nothing_to_learn_gives_exactly_zero(labels, mining, grad, rng):
    emb = unit(rng.normal(size=(5, 3)))
    value, g = grad(lambda x: MultiSimilarityLoss(mining=mining)(np.array(labels), x), emb)
    assert float(value) == 0.0
    assert np.all(g == 0)


@pytest.mark.parametrize(
    "emb",
    [
        np.ones((6, 3)),  # identical: every S = 1
        np.zeros((6, 3)),  # zero rows: every S = 0
        np.array([[1.0, 0, 0], [-1.0, 0, 0]] * 3),  # cosines exactly ±1
        np.array([[1.0, 0, 0]] * 3 + [[-1.0, 0, 0]] * 3),
    ],
    ids=["identical", "zero", "alternating-antipodal", "antipodal-classes"],
)
@pytest.mark.parametrize("mining", [True, False])
def test_degenerate_embeddings_match_reference_with_finite_gradient(emb, mining, grad):
    labels = np.array([0, 0, 0, 1, 1, 1])
    emb = emb.astype("float32")
    value, g = grad(lambda x: MultiSimilarityLoss(mining=mining)(labels, x), emb)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    want = reference.multi_similarity(labels, emb, mining=mining)  # zero rows: S = 0
    np.testing.assert_allclose(value, want, rtol=1e-4, atol=1e-6)


def test_label_layouts_agree(rng):
    labels, emb = pk_batch(rng)
    loss = MultiSimilarityLoss()
    want = float(loss(labels, emb))
    assert float(loss(labels[:, None], emb)) == pytest.approx(want)
    assert float(loss(np.eye(3)[labels], emb)) == pytest.approx(want)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_are_computed_in_float32(dtype, rng):
    labels, emb = pk_batch(rng)
    low = ops.cast(emb, dtype)
    got = MultiSimilarityLoss()(labels, low)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    np.testing.assert_allclose(
        float(got), float(MultiSimilarityLoss()(labels, ops.cast(low, "float32"))), rtol=1e-6
    )


def test_memory_is_quadratic():
    # A (B, B, B) float32 temporary at B = 2048 would be 32 GB; (B, B) ones are 16 MB.
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 128, size=2048)
    value = float(MultiSimilarityLoss()(labels, unit(rng.normal(size=(2048, 16)))))
    assert np.isfinite(value) and value > 0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"alpha": 0.0}, "alpha=0.0"),
        ({"beta": -1.0}, "beta=-1.0"),
        ({"epsilon": -0.1}, "epsilon=-0.1"),
        ({"base": float("nan")}, "base=nan"),
        ({"base": "high"}, "base='high'"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiSimilarityLoss(**kwargs)


def test_config_keys_are_init_args_and_round_trip():
    loss = MultiSimilarityLoss(alpha=1.5, beta=40.0, base=0.4, epsilon=0.05, mining=False)
    config = loss.get_config()
    init_args = set(inspect.signature(MultiSimilarityLoss.__init__).parameters) - {"self"}
    assert set(config) - {"dtype"} == init_args - {"dtype"}  # dtype None is not stored
    assert MultiSimilarityLoss.from_config(config).get_config() == config
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is MultiSimilarityLoss and restored.get_config() == config


def test_registry_entry_builds_the_class():
    entry = losses.spec("multi_similarity")
    assert entry.task == "retrieval" and entry.output == "embedding"
    loss = entry.build({"beta": 40.0, "mining": False})
    assert type(loss) is MultiSimilarityLoss and loss.beta == 40.0 and not loss.mining
    defaults = {a.name: a.default for a in entry.args}
    signature = inspect.signature(MultiSimilarityLoss.__init__).parameters
    assert defaults == {name: signature[name].default for name in defaults}


@pytest.mark.slow
def test_compile_fit_save_and_reload_without_custom_objects(tmp_path, rng):
    x = rng.normal(size=(24, 4)).astype("float32")
    y = np.repeat(np.arange(3), 8)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.UnitNormalization()]
    )
    loss = MultiSimilarityLoss(beta=40.0)
    model.compile(optimizer="sgd", loss=loss)
    # batch_size 16 leaves a last batch of 8: the traced function sees both sizes.
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(reloaded.loss) is MultiSimilarityLoss
    assert reloaded.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(
        reloaded.evaluate(x, y, batch_size=24, verbose=0),
        model.evaluate(x, y, batch_size=24, verbose=0),
        rtol=1e-5,
    )
