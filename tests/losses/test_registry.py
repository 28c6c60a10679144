"""The loss registry: entries, presets, `get`, `register` and import paths."""

import inspect
import sys
import types

import keras
import numpy as np
import pytest

import losses
from losses import catalog


def test_names_are_the_sorted_registered_entries():
    registered = [s.name for s in losses.specs()]
    assert losses.names() == sorted(registered)
    assert len(set(registered)) == len(registered)
    assert {"ce", "balanced_ce", "focal", "triplet", "triplet_hard", "contrastive"} <= set(registered)


@pytest.mark.parametrize("spec", losses.specs(), ids=lambda s: s.name)
def test_every_entry_matches_its_constructor(spec):
    """Defaults declared in the catalogue equal the signature's (they cannot drift), and every
    non-trainer argument is a keyword of the constructor (or of from_labels)."""
    cls = spec.cls
    assert issubclass(cls, keras.losses.Loss)
    builder = cls.from_labels if spec.needs == "labels" else cls.__init__
    params = inspect.signature(builder).parameters
    for arg in spec.args:
        if arg.trainer:
            assert arg.name not in params, arg.name
            continue
        assert arg.name in params, (spec.name, arg.name)
        assert params[arg.name].default == arg.default, (spec.name, arg.name)
        arg.check(arg.default)  # a default is a valid value
        if arg.search is not None:
            kind, *rest = arg.search
            assert kind in ("float", "log", "int", "choice"), arg.search
    for key, value in spec.fixed:
        assert losses.spec(spec.preset_of).arg(key).check(value) == value
        assert (key in params) is (key not in spec.trainer_fixed)


@pytest.mark.parametrize("spec", losses.specs(), ids=lambda s: s.name)
def test_every_entry_builds_from_training_labels(spec):
    labels = np.repeat(np.arange(4), [8, 4, 2, 2])
    loss = spec.build({}, labels=labels, num_classes=4)
    assert isinstance(loss, spec.cls)
    for key, value in spec.fixed:
        if key not in spec.trainer_fixed:
            assert getattr(loss, key) == value


def test_get_builds_the_class_with_kwargs():
    assert type(losses.get("focal", gamma=0.5)) is losses.FocalLoss
    assert losses.get("focal", gamma=0.5).gamma == 0.5
    assert losses.get("triplet", mining="hard").mining == "hard"
    assert losses.get("triplet_hard").mining == "hard"  # a preset fixes its argument
    assert losses.get("balanced_ce", class_weights=[1.0, 2.0]).class_weights == [1.0, 2.0]
    from_labels = losses.get("balanced_ce", labels=[0, 0, 0, 1], num_classes=2)
    # inverse frequency normalised so that Σ_c (n_c/N)·w_c = 1: w ∝ (1/0.75, 1/0.25) → (2/3, 2)
    np.testing.assert_allclose(from_labels.class_weights, [2 / 3, 2.0], rtol=1e-6)


def test_ce_is_keras_sparse_ce_accepting_one_hot():
    loss = losses.get("ce")
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "float32")
    labels = np.array([0, 2])
    want = -np.mean([np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(-1))), np.log(1 / (2 + np.e))])
    assert float(loss(labels, logits)) == pytest.approx(want, rel=1e-6)
    assert float(loss(np.eye(3)[labels], logits)) == pytest.approx(want, rel=1e-6)


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="'hinge'; known losses: arcface, balanced_ce, cb_focal"):
        losses.get("hinge")


def test_bad_arguments_name_the_value_and_the_valid_ones():
    with pytest.raises(ValueError, match="mining"):
        losses.get("triplet", mining="random")
    with pytest.raises(losses.LossArgError, match=r"mining='random' is out of range; valid: one of"):
        losses.spec("triplet").resolve({"mining": "random"})
    with pytest.raises(losses.LossArgError, match="unknown key 'gama'.*focal takes gamma, alpha"):
        losses.spec("focal").resolve({"gama": 1.0})
    with pytest.raises(losses.LossArgError, match="gamma=-1.0 is out of range; valid: >= 0"):
        losses.spec("focal").arg("gamma").parse("-1")


class Hinge(keras.losses.Loss):
    """Multiclass hinge on logits, a user's own loss."""

    def __init__(self, margin=1.0, squared=False, name="hinge", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.margin, self.squared = margin, squared

    def call(self, y_true, y_pred):
        y = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), 3)
        true = keras.ops.sum(y * y_pred, axis=-1, keepdims=True)
        terms = keras.ops.relu(self.margin + y_pred - true) * (1 - y)
        return keras.ops.sum(terms**2 if self.squared else terms, axis=-1)


def test_register_takes_arguments_from_the_signature():
    try:
        losses.register("toy_hinge", task="classification",
                        args={"margin": {"low": 0.0, "search": ("float", 0.1, 2.0)}})(Hinge)
        spec = losses.spec("toy_hinge")
        assert spec.arg_names == ("margin", "squared")
        assert spec.arg("margin").default == 1.0 and spec.arg("squared").type is bool
        assert spec.search_space() == {"margin": ("float", 0.1, 2.0)}
        assert "toy_hinge" in losses.names()
        assert losses.get("toy_hinge", margin=0.5).margin == 0.5
        with pytest.raises(ValueError, match="margin=-1.0 is out of range"):
            spec.resolve({"margin": -1})
    finally:
        catalog.remove("toy_hinge")
    assert "toy_hinge" not in losses.names()


def test_import_paths_resolve_and_bad_ones_say_why(monkeypatch):
    module = types.ModuleType("user_losses")
    module.Hinge, module.NotALoss = Hinge, dict
    monkeypatch.setitem(sys.modules, "user_losses", module)
    spec = losses.spec("user_losses:Hinge")
    assert spec.cls is Hinge and spec.task == "classification" and spec.output == "logits"
    assert spec.import_path == "user_losses:Hinge" and spec.arg_names == ("margin", "squared")
    assert losses.get("user_losses:Hinge", squared=True).squared is True
    with pytest.raises(ValueError, match="module 'no_such_mod' does not import"):
        losses.spec("no_such_mod:Loss")
    with pytest.raises(ValueError, match="module 'user_losses' has no attribute 'Nope'"):
        losses.spec("user_losses:Nope")
    with pytest.raises(ValueError, match="is not a keras.losses.Loss subclass"):
        losses.spec("user_losses:NotALoss")
