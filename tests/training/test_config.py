"""Config parsing and validation: types, ranges, choices, unknown keys."""

from __future__ import annotations

import json

import pytest

from training.config import TASKS, Config, ConfigError, field_names, parse_overrides


def test_defaults_are_valid_and_documented_task():
    config = Config()
    assert config.loss == "ce" and config.dataset == "digits" and config.task == "classification"


def test_values_parsed_by_declared_type():
    c = parse_overrides(["loss=focal", "gamma=0.5", "epochs=3", "soft=true", "alpha=none", "beta=0.9"])
    assert (c.loss, c.gamma, c.epochs, c.soft, c.alpha, c.beta) == ("focal", 0.5, 3, True, None, 0.9)
    assert isinstance(c.gamma, float) and isinstance(c.epochs, int)


@pytest.mark.parametrize(
    ("arg", "needle"),
    [
        ("epoch=3", "unknown config key 'epoch' (did you mean 'epochs'?)"),
        ("epochs=three", "epochs='three' is not an integer"),
        ("gamma=abc", "gamma='abc' is not a number"),
        ("soft=maybe", "soft='maybe' is not a boolean"),
        ("epochs=0", "epochs=0 is out of range"),
        ("gamma=-1", "gamma=-1.0 is out of range"),
        ("margin=-0.1", "margin=-0.1 is out of range"),
        ("imbalance=0.5", "imbalance=0.5 is out of range"),
        ("beta=1", "beta=1.0 is out of range"),
        ("beta=-0.1", "beta=-0.1 is out of range"),
        ("loss=hinge", "loss='hinge' is not valid; choose one of: ce, balanced_ce, focal"),
        ("mining=easy", "mining='easy' is not valid; choose one of: semi-hard, hard, all"),
        ("precision=fp8", "precision='fp8' is not valid"),
        ("noequals", "expected key=value"),
    ],
)
def test_bad_values_name_key_and_choices(arg, needle):
    with pytest.raises(ConfigError) as info:
        parse_overrides([arg])
    assert needle in str(info.value)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as info:
        parse_overrides(["colour=red"])
    for key in ("loss", "dataset", "epochs", "gamma", "margin"):
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
        Config(soft=1)


def test_json_round_trip_and_unknown_key_in_dict():
    config = parse_overrides(["loss=triplet", "mining=hard", "margin=0.3"])
    assert Config.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ConfigError, match="unknown config key 'bogus'"):
        Config.from_dict({**config.to_dict(), "bogus": 1})


def test_every_loss_has_a_task_and_margin_default():
    assert set(TASKS) == {"ce", "balanced_ce", "focal", "triplet", "contrastive"}
    assert Config(loss="triplet").resolved_margin() == 0.2
    assert Config(loss="contrastive").resolved_margin() == 1.0
    assert "landscape_points" in field_names()


def test_augment_and_embedding_head_defaults_per_task():
    from models.augment import POLICIES
    from training.config import AUGMENTS

    assert set(AUGMENTS) == {"auto", *POLICIES}  # every policy selectable, nothing else
    assert Config().resolved_augment() == "none"  # classification: model unchanged
    retrieval = parse_overrides(["loss=triplet"])
    assert retrieval.resolved_augment() == "strong" and retrieval.embedding_dim is None
    explicit = parse_overrides(["loss=triplet", "augment=none", "embedding_dim=64"])
    assert (explicit.resolved_augment(), explicit.embedding_dim) == ("none", 64)
    assert parse_overrides(["embedding_dim=none"]).embedding_dim is None
    with pytest.raises(ConfigError, match="augment='heavy' is not valid; choose one of: auto, none"):
        parse_overrides(["augment=heavy"])
    with pytest.raises(ConfigError, match="embedding_dim=1 is out of range; valid: an integer >= 2"):
        parse_overrides(["embedding_dim=1"])
