"""Config parsing and validation: types, ranges, choices, unknown keys."""

from __future__ import annotations

import json

import pytest

import losses
from training.config import Config, ConfigError, field_names, parse_overrides


def test_defaults_are_valid_and_documented_task():
    config = Config()
    assert config.loss == "ce" and config.dataset == "digits" and config.task == "classification"


def test_values_parsed_by_declared_type():
    c = parse_overrides(["loss=focal", "gamma=0.5", "epochs=3", "alpha=none", "landscape=true"])
    assert (c.loss, c.loss_args, c.epochs, c.landscape) == ("focal", {"gamma": 0.5, "alpha": None}, 3, True)
    assert isinstance(c.loss_args["gamma"], float) and isinstance(c.epochs, int)
    t = parse_overrides(["soft=true", "loss.margin=0.3", "loss=triplet"])  # order is free
    assert t.loss_args == {"soft": True, "margin": 0.3}
    assert parse_overrides(["loss=balanced_ce", "beta=0.9"]).loss_args == {"beta": 0.9}


@pytest.mark.parametrize(
    ("arg", "needle"),
    [
        (["epoch=3"], "unknown config key 'epoch' (did you mean 'epochs'?)"),
        (["epochs=three"], "epochs='three' is not an integer"),
        (["loss=focal", "gamma=abc"], "gamma='abc' is not valid; valid: >= 0 number"),
        (["loss=triplet", "soft=maybe"], "soft='maybe' is not valid; valid: true or false"),
        (["epochs=0"], "epochs=0 is out of range"),
        (["loss=focal", "gamma=-1"], "gamma=-1.0 is out of range"),
        (["loss=triplet", "margin=-0.1"], "margin=-0.1 is out of range"),
        (["imbalance=0.5"], "imbalance=0.5 is out of range"),
        (["loss=balanced_ce", "beta=1"], "beta=1.0 is out of range"),
        (["loss=balanced_ce", "beta=-0.1"], "beta=-0.1 is out of range"),
        (["loss=hinge"], "unknown loss 'hinge'; known losses: arcface, balanced_ce, "),
        (["loss=triplet", "mining=easy"], "mining='easy' is out of range; valid: one of: semi-hard, hard, all"),
        (["precision=fp8"], "precision='fp8' is not valid"),
        (["noequals"], "expected key=value"),
        (["loss=focal", "gama=1"], "unknown config key 'gama' (did you mean 'gamma'?); focal takes gamma, alpha"),
        (["gamma=1"], "unknown config key 'gamma'; ce takes label_smoothing"),
        (["loss=focal", "margin=1"], "focal takes gamma, alpha"),
    ],
)
def test_bad_values_name_key_and_choices(arg, needle):
    with pytest.raises(ConfigError) as info:
        parse_overrides(arg)
    assert needle in str(info.value)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as info:
        parse_overrides(["colour=red"])
    for key in ("loss", "dataset", "epochs", "landscape"):
        assert key in str(info.value)


def test_retrieval_batch_must_split_into_pk():
    with pytest.raises(ConfigError, match="P×K"):
        parse_overrides(["loss=triplet", "batch_size=30", "samples_per_class=4"])
    assert parse_overrides(["loss=triplet", "batch_size=32", "samples_per_class=4"]).classes_per_batch == 8
    with pytest.raises(ConfigError, match="P >= 2"):
        parse_overrides(["loss=triplet", "batch_size=16", "samples_per_class=16"])


def test_wrong_python_type_rejected():
    with pytest.raises(ConfigError, match="epochs=1.5 has the wrong type"):
        Config(epochs=1.5)
    with pytest.raises(ConfigError, match="soft=1 has the wrong type"):
        Config(loss="triplet", loss_args={"soft": 1})
    with pytest.raises(ConfigError, match="focal takes gamma, alpha"):
        Config(loss="focal", loss_args={"margin": 1.0})


def test_json_round_trip_and_unknown_key_in_dict():
    config = parse_overrides(["loss=triplet", "mining=hard", "margin=0.3"])
    assert config.loss_args == {"margin": 0.3, "mining": "hard"}
    assert Config.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ConfigError, match="unknown config key 'bogus'"):
        Config.from_dict({**config.to_dict(), "bogus": 1})


def test_task_and_argument_defaults_come_from_the_registry():
    for spec in losses.specs():
        config = Config(loss=spec.name)
        assert config.task == spec.task
        assert config.resolved_loss_args() == {**{a.name: a.default for a in spec.args},
                                               **dict(spec.fixed)}
    assert Config(loss="triplet").resolved_loss_args()["margin"] == 0.2
    assert Config(loss="contrastive").resolved_loss_args()["margin"] == 1.0
    assert "landscape_points" in field_names()


def test_changing_the_loss_drops_the_previous_losses_arguments():
    focal = parse_overrides(["loss=focal", "gamma=1"])
    assert parse_overrides(["loss=triplet"], base=focal).loss_args == {}
    assert parse_overrides(["epochs=3"], base=focal).loss_args == {"gamma": 1.0}


def test_augment_and_embedding_head_defaults_per_task():
    from models.augment import POLICIES
    from training.config import AUGMENTS
    from training.data.transforms import PIPELINE_POLICIES

    # every policy selectable (the model's layers and tf.data's), nothing else
    assert set(AUGMENTS) == {"auto", *POLICIES, *PIPELINE_POLICIES}
    assert Config().resolved_augment() == "none"  # classification: model unchanged
    # tf.data's policies never reach the model (the logged model takes plain images)
    crop = parse_overrides(["augment=crop_flip"])
    assert (crop.resolved_augment(), crop.pipeline_augment()) == ("none", "crop_flip")
    assert parse_overrides(["dataset=cub200", "loss=triplet"]).pipeline_augment() == \
        "resized_crop"
    retrieval = parse_overrides(["loss=triplet"])
    assert retrieval.resolved_augment() == "strong" and retrieval.embedding_dim is None
    explicit = parse_overrides(["loss=triplet", "augment=none", "embedding_dim=64"])
    assert (explicit.resolved_augment(), explicit.embedding_dim) == ("none", 64)
    assert parse_overrides(["embedding_dim=none"]).embedding_dim is None
    with pytest.raises(ConfigError, match="augment='heavy' is not valid; choose one of: auto, none"):
        parse_overrides(["augment=heavy"])
    with pytest.raises(ConfigError, match="embedding_dim=1 is out of range; valid: an integer >= 2"):
        parse_overrides(["embedding_dim=1"])
