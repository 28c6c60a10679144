"""The command-line wrapper: config resolution (resume), exit codes, signal handling."""

from __future__ import annotations

import signal

import mlflow
import pytest

from training.cli import EXIT_BAD_INPUT, EXIT_SIGINT, EXIT_SIGTERM, resolve_config, run_cli
from training.config import Config, ConfigError


@pytest.fixture
def logged_run(mlflow_store):
    """A run that logged a non-default config.json, as `train()` does (no training needed)."""
    logged = Config(loss="focal", gamma=1.5, epochs=9, lr_schedule="constant", seed=4)
    mlflow.set_experiment("cli")
    with mlflow.start_run() as run:
        mlflow.log_text(logged.to_json(), "config.json")
    return run.info.run_id


def test_plain_arguments_override_defaults_only():
    config = resolve_config(["loss=focal", "gamma=0.5"])
    assert config == Config(loss="focal", gamma=0.5)


def test_resume_takes_the_logged_config_and_only_explicit_keys(logged_run):
    config = resolve_config([f"resume={logged_run}", "epochs=12"])
    assert config == Config(
        loss="focal", gamma=1.5, epochs=12, lr_schedule="constant", seed=4, resume=logged_run
    )


def test_resume_none_is_a_plain_run():
    assert resolve_config(["resume=none", "epochs=3"]) == Config(epochs=3)


def test_resume_of_unknown_run(mlflow_store, capsys):
    with pytest.raises(ConfigError, match="resume=feedbeef: no such run in the tracking store"):
        resolve_config(["resume=feedbeef"])
    assert run_cli(lambda config: None, ["resume=feedbeef"]) == EXIT_BAD_INPUT
    assert "no such run" in capsys.readouterr().err


def test_resume_of_a_run_without_config_json(mlflow_store):
    mlflow.set_experiment("cli")
    with mlflow.start_run() as run:
        pass
    with pytest.raises(ConfigError, match="has no readable config.json"):
        resolve_config([f"resume={run.info.run_id}"])


def test_exit_codes_of_interrupts_and_sigterm_handler_restored(capsys):
    from training.run.tracking import RunKilled

    def interrupted(config):
        raise KeyboardInterrupt

    def terminated(config):
        assert signal.getsignal(signal.SIGTERM) is not before  # ours, while running
        raise RunKilled("signal 15")

    before = signal.getsignal(signal.SIGTERM)
    assert run_cli(interrupted, []) == EXIT_SIGINT == 130
    assert run_cli(terminated, []) == EXIT_SIGTERM == 143
    assert signal.getsignal(signal.SIGTERM) is before
    err = capsys.readouterr().err
    assert "interrupted (SIGINT): no run was open" in err
    assert "terminated (SIGTERM): no run was open" in err


def test_config_printed_before_the_run(capsys):
    assert run_cli(lambda config: None, ["loss=focal"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("config:\n  loss = 'focal'\n")
