"""Every `make ...` and `python -m training...` command the README shows is accepted as
written: `make -n` expands it to its Python command line, whose arguments are then parsed by
the same code that would run it (unknown keys, bad values and broken targets fail here).
What each command does is tested end to end elsewhere (tests/training/)."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
from conftest import REPO_ROOT

from training.cli import resolve_config
from training.config import parse_overrides
from training.study.compare import parse_settings

FAKE_RUN = "0123456789abcdef0123456789abcdef"
# Commands that start a server, the UI, a benchmark or the suite itself: their targets are
# expanded by `make -n` but not parsed (they take no key=value arguments of ours).
NOT_PARSED = ("mlflow ui", "mlflow/server.sh", "benchmarks.", "pytest", "ruff", "pip ")


def readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith(("make ", "python -m training")):
                commands.append(line)
    return commands


def _python_line(command: str) -> list[str]:
    """The `python -m module args...` a README command runs."""
    words = shlex.split(command.replace("<run_id>", FAKE_RUN))
    if words[0] == "python":
        return words[2:]
    expanded = subprocess.run(["make", "-n", "-s", *words[1:]], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=60)
    assert expanded.returncode == 0, expanded.stderr
    joined = expanded.stdout.replace("\\\n", " ")  # recipe lines continued with a backslash
    lines = [ln for ln in joined.splitlines() if " -m " in ln or "server.sh" in ln]
    assert lines, f"{command!r} expands to no command: {expanded.stdout}"
    last = lines[-1]
    if any(marker in last for marker in NOT_PARSED):
        return []
    return shlex.split(last.split(" -m ", 1)[1])


def _parse(module: str, args: list[str]) -> None:
    if "--help" in args:
        return  # tested in tests/training/test_cli.py
    if module == "training.train":
        if any(a.startswith("resume=") for a in args):
            parse_overrides([a for a in args if not a.startswith("resume=")])
        else:
            resolve_config(args)
    elif module == "training.compare":
        parse_settings(args)
    elif module == "training.report":
        from training.study.report.__main__ import parse
        parse(args)
    elif module == "training.landscape":
        from training.landscape.__main__ import parse
        parse(args)
    elif module == "training.landscape.ridge":
        from training.landscape.ridge import parse as parse_ridge
        parse_ridge(args)
    elif module == "training.workers":
        from training.keyvalue import parse_keys
        from training.workers import KEYS
        own = {k.name for k in KEYS}
        parse_keys([a for a in args if a.split("=")[0] in own], KEYS)
        resolve_config([a for a in args if a.split("=")[0] not in own])
    elif module == "training.tune":
        from training.study.tune import parse_settings as parse_tune
        parse_tune(args)
    else:
        raise AssertionError(f"the README runs an unknown module {module!r}")


def test_the_readme_shows_commands():
    assert len(readme_commands()) >= 20


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_is_accepted(command, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    # The README's own example loss, where its commands expect it (my_losses.py).
    from test_readme import custom_loss_example

    (tmp_path / "my_losses.py").write_text(custom_loss_example())
    monkeypatch.syspath_prepend(str(tmp_path))
    words = _python_line(command)
    if words:
        _parse(words[0], words[1:])
