"""The command-line wrapper: config resolution (resume), exit codes, signal handling, help."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from training.cli import EXIT_BAD_INPUT, EXIT_SIGINT, EXIT_SIGTERM, resolve_config, run_cli
from training.config import Config, ConfigError


@pytest.fixture
def logged_run(mlflow_store):
    """A run that logged a non-default config.json, as `train()` does (no training needed)."""
    logged = Config(loss="focal", loss_args={"gamma": 1.5}, epochs=9, lr_schedule="constant", seed=4)
    mlflow.set_experiment("cli")
    with mlflow.start_run() as run:
        mlflow.log_text(logged.to_json(), "config.json")
    return run.info.run_id


def test_plain_arguments_override_defaults_only():
    config = resolve_config(["loss=focal", "gamma=0.5"])
    assert config == Config(loss="focal", loss_args={"gamma": 0.5})


def test_resume_takes_the_logged_config_and_only_explicit_keys(logged_run):
    config = resolve_config([f"resume={logged_run}", "epochs=12"])
    assert config == Config(
        loss="focal", loss_args={"gamma": 1.5}, epochs=12, lr_schedule="constant", seed=4,
        resume=logged_run,
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


def test_config_printed_as_what_differs_from_the_defaults(capsys):
    assert run_cli(lambda config: None, ["loss=focal", "epochs=3", "gamma=1"]) == 0
    assert capsys.readouterr().out == "focal on digits: epochs=3 loss.gamma=1.0\n"
    assert run_cli(lambda config: None, []) == 0
    assert capsys.readouterr().out == "ce on digits: (all defaults)\n"


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    ("name", "loss", "args"),
    [
        ("config_flat_focal.json", "focal", {"gamma": 1.5}),
        ("config_flat_triplet.json", "triplet",
         {"margin": 0.3, "mining": "hard", "distance": "euclidean", "soft": False}),
    ],
)
def test_a_config_json_of_the_flat_era_still_loads(name, loss, args):
    """Written by the code before losses owned their arguments (gamma, margin, ... fields)."""
    logged = json.loads((FIXTURES / name).read_text())
    assert "gamma" in logged and "loss_args" not in logged
    config = Config.from_dict(logged)
    assert (config.loss, config.loss_args, config.epochs) == (loss, args, 2)


def test_a_flat_config_json_resumes(mlflow_store):
    mlflow.set_experiment("cli")
    with mlflow.start_run() as run:
        mlflow.log_text((FIXTURES / "config_flat_focal.json").read_text(), "config.json")
    config = resolve_config([f"resume={run.info.run_id}", "epochs=5"])
    assert (config.loss, config.loss_args, config.epochs) == ("focal", {"gamma": 1.5}, 5)


def _help(*argv: str) -> subprocess.CompletedProcess:
    # -X importtime is not needed: the child reports whether TensorFlow was imported.
    code = ("import runpy, sys; sys.argv = ['training.train', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('training.train', run_name='__main__')\n"
            "except SystemExit as exit:\n"
            "    print('TF' if 'tensorflow' in sys.modules else 'noTF', exit.code)\n")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=60)


def test_help_lists_every_key_and_the_named_losss_arguments_without_tensorflow():
    from training.config import config_fields

    out = _help("loss=focal", "--help")
    assert out.stdout.rstrip().endswith("noTF 0"), out.stdout[-300:] + out.stderr
    for field in config_fields():
        if field.name != "loss_args":
            assert f"  {field.name} " in out.stdout
    assert "optimizer              str, default adam [adam | adamw | sgd]" in out.stdout
    assert "gamma: float, default 2.0; >= 0 number. focusing parameter" in out.stdout
    for spec in __import__("losses").specs():
        assert f"  {spec.name} " in out.stdout


def test_help_of_an_unknown_loss_exits_2():
    out = _help("loss=hinge", "--help")
    assert "unknown loss 'hinge'" in out.stderr
    assert out.stdout.rstrip().endswith("noTF 2")


def test_signals_default_lets_a_sigterm_end_the_process_while_libraries_load():
    """While TensorFlow's C++ libraries load no Python handler can run (one long dlopen), so
    the compare loads them with SIGTERM and Ctrl-C at their default action, and restores its
    own handlers after."""
    import signal

    from training import cli

    def mine(signum, frame):
        pass

    before = {s: signal.signal(s, mine) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with cli.signals_default():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
            assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
