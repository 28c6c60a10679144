"""The Makefile and the lock files: `make help` tells the truth, `make train` installs only
what training needs (requirements.lock), `make test` and friends the dev lock, and the lock
files pin exactly what pyproject.toml asks for. Runs `make -n` (prints, executes nothing)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from conftest import REPO_ROOT
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+, what the lock files are for

RUN_LOCK = "requirements.lock"
DEV_LOCK = "requirements-dev.lock"
# Every variable the targets take (tuning ones included), as the issue lists them.
VARIABLES = (
    "LOSS DATASET EPOCHS SEED IMBALANCE RESUME STRATEGY DEVICES LANDSCAPE ARGS SEEDS LOSSES "
    "EXPERIMENT PARENT RUN PORT HOST WORKERS TUNE TRIALS SWEEP"
).split()
TRAINING_TARGETS = [
    "venv",
    "train",
    "tune",
    "bench",
    "ui",
    "compare",
    "report",
    "landscape",
    "workers",
]
DEV_TARGETS = ["test", "test-slow", "lint", "test-backends", "server"]
DEV_ONLY = {
    "pytest",
    "ruff",
    "hypothesis",
    "psycopg",
    "psycopg-binary",
    "psycopg2-binary",
    "flask-wtf",
    "pytest-xdist",
    "execnet",
}


def _makefile_knobs() -> list[str]:
    """The user-settable variables: every `NAME ?= ...` line of the Makefile."""
    text = (REPO_ROOT / "Makefile").read_text()
    return re.findall(r"^([A-Z][A-Z0-9_]*)\s*\?=", text, flags=re.M)


def _env() -> dict[str, str]:
    """The environment minus anything an outer make or the shell could feed into `?=`."""
    drop = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", *VARIABLES, *_makefile_knobs()}
    return {k: v for k, v in os.environ.items() if k not in drop}


def make(*args: str, cwd=REPO_ROOT) -> str:
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 0, f"make {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _pip_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " -m pip " in line]


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", line)
        assert m, f"{name}: not an exact name==version pin: {line!r}"
        key = canonicalize_name(m.group(1))
        assert key not in pins, f"{name}: {key} pinned twice"
        pins[key] = m.group(2)
    return pins


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


# --- make help ------------------------------------------------------------------------------


def test_help_expands_everything_and_lists_every_variable():
    out = make("help")
    assert "$(" not in out, out
    assert "make train" in out and "make test " in out and "make tune" in out
    variables = out.split("Variables", 1)[1]
    assert len(variables.strip().splitlines()) <= 3, variables
    words = set(re.findall(r"\b([A-Z][A-Z0-9_]*)\b(?==|\s|$)", variables))
    missing = [v for v in [*VARIABLES, *_makefile_knobs()] if v not in words]
    assert not missing, f"make help does not list {missing}:\n{variables}"
    assert "PORT=5000" in variables and "LOSS=ce" in variables


def test_help_shows_the_values_given():
    out = make("help", "PORT=8123", "LOSS=focal")
    assert "PORT=8123" in out and "LOSS=focal" in out


def test_every_documented_target_is_in_help():
    text = (REPO_ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-z-]+):.*## ", text, flags=re.M)
    out = make("help")
    for target in targets:
        assert re.search(rf"make {re.escape(target)}\s", out), target


# --- which lock each target installs ---------------------------------------------------------


@pytest.mark.parametrize("target", TRAINING_TARGETS)
def test_training_targets_install_the_runtime_lock_only(target):
    out = make("-n", "-B", target, "RUN=abc")
    pip = _pip_lines(out)
    assert any(f"pip install -q -r {RUN_LOCK}" in line for line in pip), out
    assert DEV_LOCK not in out, out
    assert not re.search(r"\.\[(dev|server|backends)", out), out
    # The pinned set first, then the project itself without resolving anything again.
    installs = [line for line in pip if " install " in line and "--upgrade pip" not in line]
    assert installs[-1].endswith("pip install -q --no-deps -e ."), installs
    for tool in ("pytest", "ruff", "hypothesis", "psycopg"):
        assert not any(tool in line for line in pip), (tool, pip)


@pytest.mark.parametrize("target", DEV_TARGETS)
def test_dev_targets_install_the_dev_lock(target):
    out = make("-n", "-B", target)
    pip = _pip_lines(out)
    assert any(f"pip install -q -r {DEV_LOCK}" in line for line in pip), out
    assert not any(f"-r {RUN_LOCK}" in line for line in pip), out
    assert any(line.endswith("pip install -q --no-deps -e .") for line in pip), out


def test_backends_come_from_the_extra_within_the_dev_pins():
    out = make("-n", "-B", "test-backends")
    assert f"-c {DEV_LOCK} -e '.[backends]'" in out, out
    # One place says which torch: pyproject's extra, not the Makefile.
    assert "torch==" not in (REPO_ROOT / "Makefile").read_text()
    backends = {
        canonicalize_name(Requirement(r).name): Requirement(r)
        for r in _pyproject()["project"]["optional-dependencies"]["backends"]
    }
    assert str(backends["torch"].specifier) == "==2.13.0"
    assert backends["jax"].extras == {"cpu"}
    assert str(backends["jax"].specifier).startswith("==")


def _stamped_copy(tmp_path):
    """The Makefile, pyproject and locks in a scratch dir with both stamps newer than them."""
    for name in ("Makefile", "pyproject.toml", RUN_LOCK, DEV_LOCK):
        shutil.copy2(REPO_ROOT / name, tmp_path / name)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    later = time.time() + 100
    for stamp in (".stamp-run", ".stamp-dev", ".stamp-backends"):
        path = tmp_path / ".venv" / stamp
        path.touch()
        os.utime(path, (later, later))
    return tmp_path


def test_each_stamp_follows_its_own_lock_and_pyproject(tmp_path):
    root = _stamped_copy(tmp_path)
    assert not _pip_lines(make("-n", "train", cwd=root))
    assert not _pip_lines(make("-n", "test", cwd=root))
    # A new dev lock does not reinstall the training venv; it does reinstall the test one.
    assert not _pip_lines(make("-n", "-W", DEV_LOCK, "train", cwd=root))
    assert any(
        f"-r {DEV_LOCK}" in line
        for line in _pip_lines(make("-n", "-W", DEV_LOCK, "test", cwd=root))
    )
    assert not _pip_lines(make("-n", "-W", RUN_LOCK, "test", cwd=root))
    assert any(
        f"-r {RUN_LOCK}" in line
        for line in _pip_lines(make("-n", "-W", RUN_LOCK, "train", cwd=root))
    )
    for target, lock in (("train", RUN_LOCK), ("test", DEV_LOCK)):
        pip = _pip_lines(make("-n", "-W", "pyproject.toml", target, cwd=root))
        assert any(f"-r {lock}" in line for line in pip), (target, pip)


def _commands(output: str) -> str:
    """`make -n` output with continuation lines joined and runs of blanks squeezed."""
    return re.sub(r"[ \t]+", " ", re.sub(r"\\\n\s*", " ", output))


def test_tune_and_compare_pass_the_tuning_knobs():
    stamps = ["-o", ".venv/.stamp-run"]
    out = _commands(
        make("-n", *stamps, "tune", "LOSS=focal", "TRIALS=20", "EPOCHS=3", "ARGS=gamma=1")
    )
    assert "-m training.tune loss=focal dataset='digits' trials=20 epochs=3 gamma=1" in out, out
    out = _commands(make("-n", *stamps, "compare", "TUNE=1", "SWEEP=gamma", "LOSSES=ce,focal"))
    assert (
        "-m training.compare dataset='digits' losses=ce,focal" in out and " tune=1 sweep='gamma'" in out
    ), out
    # One shell word: a sweep of tuples separates its values with ";"
    out = _commands(make("-n", *stamps, "compare", "SWEEP=quantiles=0.1,0.9;0.2,0.8"))
    assert " sweep='quantiles=0.1,0.9;0.2,0.8' " in out, out
    assert " tune=" not in make("-n", *stamps, "compare")


# --- the lock files ------------------------------------------------------------------------


@pytest.mark.parametrize("lock", [RUN_LOCK, DEV_LOCK])
def test_lock_pins_everything_exactly(lock):
    pins = _pins(lock)  # asserts that every line is name==version
    assert len(pins) > 50
    for name in ("tensorflow", "keras", "mlflow", "optuna", "scipy", "numpy"):
        assert name in pins, f"{lock} lacks {name}"
    assert "losslab" not in pins and "torch" not in pins and "jax" not in pins
    header = (REPO_ROOT / lock).read_text().split("\n", 3)[:3]
    assert any("3.11" in line and "x86_64" in line for line in header), header


def test_dev_lock_adds_the_dev_tools_and_agrees_with_the_runtime_lock():
    run, dev = _pins(RUN_LOCK), _pins(DEV_LOCK)
    assert DEV_ONLY <= set(dev), DEV_ONLY - set(dev)
    assert not DEV_ONLY & set(run), DEV_ONLY & set(run)
    differ = {name: (v, dev.get(name)) for name, v in run.items() if dev.get(name) != v}
    assert not differ, f"runtime pins missing from or different in {DEV_LOCK}: {differ}"


def _requirements(extras: tuple[str, ...]) -> list[Requirement]:
    project = _pyproject()["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    env = {
        **default_environment(),
        "python_version": "3.11",
        "python_full_version": "3.11.7",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
    }
    return [r for r in reqs if r.name != "losslab" and (r.marker is None or r.marker.evaluate(env))]


@pytest.mark.parametrize(("lock", "extras"), [(RUN_LOCK, ()), (DEV_LOCK, ("dev", "server"))])
def test_lock_satisfies_pyproject(lock, extras):
    """A requirement added to pyproject.toml without `make lock` fails here, not on a user."""
    pins = _pins(lock)
    for req in _requirements(extras):
        name = canonicalize_name(req.name)
        assert name in pins, f"{lock} lacks {req} (run `make lock`)"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{lock} pins {name}=={pins[name]}, pyproject.toml asks {req} (run `make lock`)"
        )


@pytest.mark.parametrize("name", ["keras", "mlflow", "tensorflow"])
def test_pyproject_caps_the_major_version(name):
    (req,) = [r for r in _requirements(()) if canonicalize_name(r.name) == name]
    spec: SpecifierSet = req.specifier
    pinned = Version(_pins(RUN_LOCK)[name])
    assert spec.contains(pinned)
    assert not spec.contains(f"{pinned.major + 1}.0.0", prereleases=True), f"{req}: no major cap"
    assert not spec.contains(f"{pinned.major + 1}.0.0rc1", prereleases=True), f"{req}: no major cap"
    assert any(s.operator == "<" for s in spec), req


def test_local_state_is_git_ignored():
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["mlflow.db.lock", "study.journal", "runs/tune.journal", "optuna.log"]
    proc = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "check-ignore", "--no-index", *paths],
        capture_output=True,
        text=True,
    )
    assert sorted(proc.stdout.split()) == sorted(paths), proc.stdout + proc.stderr
    proc = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "check-ignore", "--no-index", RUN_LOCK, DEV_LOCK],
        capture_output=True,
        text=True,
    )
    assert proc.stdout.strip() == "", f"lock files must be committed, not ignored: {proc.stdout}"


# --- make ui ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_make_ui_serves_the_store_on_host_and_port(tmp_path, new_store):
    """The command `make ui HOST=... PORT=...` runs (taken from `make -n`, so the stamp
    rules do not reinstall anything here) answers on that address over the given store."""
    port = _free_port()
    (tmp_path / "make").mkdir()
    root = _stamped_copy(tmp_path / "make")
    lines = make("-n", "ui", "HOST=127.0.0.1", f"PORT={port}", cwd=root).strip().splitlines()
    command = lines[-1]
    assert f"--host 127.0.0.1 --port {port}" in command and not _pip_lines("\n".join(lines))
    env = {**_env(), "MLFLOW_TRACKING_URI": new_store(tmp_path / "mlflow.db")}
    proc = subprocess.Popen(["bash", "-c", command], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.status == 200 and r.read().strip() == b"OK"
                    break
            except OSError:
                assert time.monotonic() < deadline, "make ui did not answer within 120 s"
                time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
