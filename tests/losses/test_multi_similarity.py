"""MultiSimilarityLoss against the explicit loop over anchors and their (mined) pairs."""

import numpy as np
import pytest
import reference
from batches import DEGENERATE_EMBEDDINGS, DEGENERATE_LABELS, pk_batch, random_batch, unit
from keras import ops

import losses
from losses import MultiSimilarityLoss, multi_similarity_loss


def random_4(rng):
    """Random labels over 4 classes: some anchors may have no positive."""
    return random_batch(rng, classes=4)


SETTINGS = [
    {},  # the defaults: α 2, β 50, base 0.5, ε 0.1, mining
    {"alpha": 1.0, "beta": 10.0, "base": 0.0, "epsilon": 0.2},
    {"alpha": 5.0, "beta": 80.0, "base": 0.3, "epsilon": 0.0},
    {"alpha": 2.0, "beta": 40.0, "base": 0.5, "epsilon": 0.1, "mining": False},
]


@pytest.mark.parametrize("kwargs", SETTINGS, ids=lambda k: str(k) or "defaults")
@pytest.mark.parametrize("make", [pk_batch, random_4], ids=["PxK", "random-labels"])
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


@pytest.mark.parametrize("kind", DEGENERATE_EMBEDDINGS)
@pytest.mark.parametrize("mining", [True, False])
def test_degenerate_embeddings_match_reference_with_finite_gradient(kind, mining, grad):
    labels, emb = DEGENERATE_LABELS, DEGENERATE_EMBEDDINGS[kind]
    value, g = grad(lambda x: MultiSimilarityLoss(mining=mining)(labels, x), emb)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    want = reference.multi_similarity(labels, emb, mining=mining)  # zero rows: S = 0
    np.testing.assert_allclose(value, want, rtol=1e-4, atol=1e-6)


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


def test_registry_entry_builds_the_class():
    entry = losses.spec("multi_similarity")
    assert entry.task == "retrieval" and entry.output == "embedding"
    loss = entry.build({"beta": 40.0, "mining": False})
    assert type(loss) is MultiSimilarityLoss and loss.beta == 40.0 and not loss.mining
