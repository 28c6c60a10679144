"""losses.get / losses.names: the registry configs select losses from."""

import keras
import numpy as np
import pytest

import losses


def test_names_sorted():
    assert losses.names() == ["balanced_ce", "ce", "contrastive", "focal", "triplet"]


@pytest.mark.parametrize(
    "name,cls",
    [
        ("balanced_ce", losses.BalancedCrossentropy),
        ("focal", losses.FocalLoss),
        ("triplet", losses.TripletLoss),
        ("contrastive", losses.ContrastiveLoss),
    ],
)
def test_get_builds_the_class_with_kwargs(name, cls):
    kwargs = {"class_weights": [1.0, 2.0]} if name == "balanced_ce" else {}
    loss = losses.get(name, **kwargs)
    assert type(loss) is cls
    assert losses.get("focal", gamma=0.5).gamma == 0.5
    assert losses.get("triplet", mining="hard").mining == "hard"


def test_ce_is_keras_sparse_ce_accepting_one_hot():
    loss = losses.get("ce")
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "float32")
    labels = np.array([0, 2])
    want = -np.mean([np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(-1))), np.log(1 / (2 + np.e))])
    assert float(loss(labels, logits)) == pytest.approx(want, rel=1e-6)
    assert float(loss(np.eye(3)[labels], logits)) == pytest.approx(want, rel=1e-6)
    assert float(losses.get("ce", from_logits=False)(labels, keras.ops.softmax(logits))) == (
        pytest.approx(want, rel=1e-5)
    )


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="'hinge'.*balanced_ce, ce, contrastive, focal, triplet"):
        losses.get("hinge")


def test_bad_kwargs_raise():
    with pytest.raises(ValueError, match="mining"):
        losses.get("triplet", mining="random")
