"""SupConLoss (L_out) against the explicit loop over anchors and their positives."""

import numpy as np
import pytest
import reference
from batches import DEGENERATE_EMBEDDINGS, DEGENERATE_LABELS, pk_batch, random_batch, unit
from keras import ops

import losses
from losses import SupConLoss, supcon_loss

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


# Identical embeddings have a value of their own (above).
@pytest.mark.parametrize("kind", [k for k in DEGENERATE_EMBEDDINGS if k != "identical"])
def test_degenerate_embeddings_match_reference_with_finite_gradient(kind, grad):
    labels, emb = DEGENERATE_LABELS, DEGENERATE_EMBEDDINGS[kind]
    value, g = grad(lambda x: SupConLoss()(labels, x), emb)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    np.testing.assert_allclose(value, reference.supcon(labels, emb), rtol=1e-4, atol=1e-5)


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


def test_registry_entry_builds_the_class():
    entry = losses.spec("supcon")
    assert entry.task == "retrieval" and entry.output == "embedding"
    loss = entry.build({"temperature": 0.2})
    assert type(loss) is SupConLoss and loss.temperature == 0.2
