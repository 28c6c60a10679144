"""`make tune`'s command line, no training: the key=value line and its refusals (exit 2
naming the valid choices), the search space and fingerprint, a trial's sampled config, and
`--help` without TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from training.errors import ConfigError
from training.study import tune

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _no_storage_from_the_environment(monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["loss=focal", "trials=2", "objective=test/balanced_accuracy"],
         "trials never read the test split; choose a val/ metric: val/balanced_accuracy"),
        (["loss=focal", "trials=2", "objective=train/loss"], "is not a val/ metric"),
        (["loss=triplet", "trials=2", "objective=val/balanced_accuracy"],
         "valid: val/map_at_r, val/precision_at_1"),
        (["loss=losses.crossentropy:Crossentropy", "trials=2"],  # an import path: no range
         "has nothing to tune: its registry entry declares no search range; tune shared "
         "settings with tune_keys=learning_rate,l2"),
        (["loss=focal", "gamma=1", "trials=2"], "given on the line, so fixed: gamma"),
        (["loss=focal"], "trials=<value> is required"),
        (["loss=focal", "trials=-1"], "trials=-1 is out of range"),
        (["loss=focal", "trials=2", "pruner=hyperband"], "choose one of: median, none"),
        (["loss=focal", "trials=2", "workers=0"], "workers=0 is out of range"),
        (["loss=focal", "trials=2", "tune_keys=margin"], "'margin' has no built-in range; "
         "valid: learning_rate (log 0.0001..0.01), l2 (log 1e-06..0.01)"),
        (["loss=focal", "trials=2", "l2=0.1", "tune_keys=l2"], "l2 is both set"),
        (["loss=focal", "trials=2", "run_name=x"], "run_name is set per trial"),
        (["loss=focal", "trials=2", "learning_rat=1"], "did you mean 'learning_rate'"),
        (["loss=focal", "trials"], "expected key=value"),
    ],
)
def test_bad_input_exits_2_naming_the_valid_choices(args, needle, capsys):
    assert tune.main(args) == 2
    assert needle in capsys.readouterr().err


def test_search_space_is_the_registry_entry_plus_named_shared_keys():
    space = tune.parse_settings(["loss=cb_focal", "trials=3"]).search_space()
    assert space == {"beta": ("choice", (0.99, 0.999, 0.9999)), "gamma": ("float", 0.0, 5.0)}
    settings = tune.parse_settings(["loss=ce", "trials=3", "tune_keys=learning_rate,l2", "epochs=2"])
    # ce's own range (label smoothing, as timm tunes it) plus the two named shared keys
    assert settings.search_space() == {
        "label_smoothing": ("choice", (0.0, 0.05, 0.1, 0.2)), **tune.SHARED_RANGES}
    assert settings.config.epochs == 2 and settings.objective == "val/balanced_accuracy"
    assert settings.study_name() == "ce-digits-val/balanced_accuracy"
    retrieval = tune.parse_settings(["loss=triplet", "trials=3", "objective=val/precision_at_1"])
    assert retrieval.direction == "maximize" and "margin" in retrieval.search_space()
    assert tune.parse_settings(["loss=focal", "trials=3", "objective=val/ece"]).direction == "minimize"
    tau = tune.parse_settings(["loss=focal", "trials=3", "objective=val/balanced_accuracy_tau_norm"])
    assert tau.direction == "maximize"
    with pytest.raises(ConfigError, match="objective=val/balanced_accuracy_tau_norm needs a dense"):
        tune.parse_settings(["loss=ldam_drw", "trials=3",
                             "objective=val/balanced_accuracy_tau_norm"])
    # The fingerprint ignores per-run names but not the trials' settings.
    a = tune.parse_settings(["loss=focal", "trials=3", "checkpoint_dir=/x"]).fingerprint()
    assert a == tune.parse_settings(["loss=focal", "trials=9"]).fingerprint()
    assert a != tune.parse_settings(["loss=focal", "trials=3", "epochs=2"]).fingerprint()


def test_sample_draws_each_kind_of_range_within_its_bounds():
    study = optuna.create_study()
    space = {"a": ("float", 0.0, 5.0), "b": ("log", 1e-4, 1e-2), "c": ("int", 1, 3),
             "d": ("choice", (None, 0.99))}
    for _ in range(10):
        values = tune.sample(study.ask(), space)
        assert 0 <= values["a"] <= 5 and 1e-4 <= values["b"] <= 1e-2
        assert values["c"] in (1, 2, 3) and values["d"] in (None, 0.99)
    config = tune.apply_params(tune.parse_settings(["loss=focal", "trials=1"]).config,
                               {"gamma": 0.5, "learning_rate": 1e-3})
    assert (config.loss_args, config.learning_rate) == ({"gamma": 0.5}, 1e-3)


def test_help_lists_every_key_and_search_space_without_tensorflow():
    code = ("import runpy, sys; sys.argv = ['training.tune', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('training.tune', run_name='__main__')\n"
            "except SystemExit as exit:\n"
            "    print('TF' if 'tensorflow' in sys.modules else 'noTF', exit.code)\n")
    out = subprocess.run([sys.executable, "-c", code, "loss=focal", "--help"],
                         capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert out.stdout.rstrip().endswith("noTF 0"), out.stdout[-300:] + out.stderr
    for key in tune.TUNE_KEYS:
        assert f"  {key.name} " in out.stdout
    assert "  epochs " in out.stdout and "  focal                  gamma float 0..5" in out.stdout
    assert "gamma: float, default 2.0" in out.stdout
