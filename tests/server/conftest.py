"""Fixtures for the team tracking server tests: a PostgreSQL database and `mlflow/server.sh`.

The PostgreSQL server comes from outside: `.ci/postgres.sh` starts one on loopback and
prints `export LOSSLAB_TEST_POSTGRES_URI=...`, which `.ci/run` evals. Without that variable
the server tests skip, except under CI (`CI` set), where a skip would hide a broken setup.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_SH = REPO_ROOT / "mlflow" / "server.sh"
POSTGRES_ENV = "LOSSLAB_TEST_POSTGRES_URI"
# Server start on 2 shared CPU cores: ~5 s schema migration + ~10 s importing mlflow in the
# uvicorn worker. The bound is generous because a loaded CI machine is slower still.
START_TIMEOUT_S = 120.0


def require_postgres_uri(environ: Mapping[str, str]) -> str:
    """The test database URI from `environ`; skip without it, or fail when `CI` is set."""
    uri = environ.get(POSTGRES_ENV, "")
    if uri:
        return uri
    reason = (
        f"{POSTGRES_ENV} is not set; start a loopback PostgreSQL with "
        f'`eval "$(sudo bash .ci/postgres.sh)"` to run the tracking server tests'
    )
    if "CI" in environ:
        pytest.fail(f"{reason}. CI is set, so these tests must run, not skip.", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def postgres_requirement() -> Callable[[Mapping[str, str]], str]:
    """`require_postgres_uri` itself, so its skip/fail rule can be tested with fake envs."""
    return require_postgres_uri


@pytest.fixture(scope="session")
def postgres_uri() -> str:
    """The URI from the environment, checked to answer (a dead server fails, never skips)."""
    import sqlalchemy

    uri = require_postgres_uri(os.environ)
    engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.OperationalError as exc:
        pytest.fail(f"{POSTGRES_ENV} cannot be used: {exc.orig}", pytrace=False)
    finally:
        engine.dispose()
    return uri


@pytest.fixture
def fresh_database(postgres_uri):
    """An empty database per test (the role has CREATEDB); dropped afterwards.

    Empty, because the auth app creates its admin user only in a store that has none: a
    database reused across runs would keep the first run's admin password.
    """
    import sqlalchemy
    from sqlalchemy.engine import make_url

    name = f"losslab_server_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(postgres_uri, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_uri).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as connection:
        # FORCE (PostgreSQL 13+): a server killed mid-request may leave a connection open.
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_group(pgid: int) -> list[int]:
    """Live processes in group `pgid`, read from /proc (no `ps`: minimal images lack it)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # Fields after the parenthesised command: state, ppid, pgrp, ...
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@dataclass
class TrackingServer:
    """One `mlflow/server.sh` process, its own process group, its log and artifact folder."""

    url: str
    process: subprocess.Popen
    log_path: Path
    artifacts: Path
    stopped: bool = field(default=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def command_lines(self) -> list[str]:
        """argv of every process of the server, as `ps` would show them to any local user."""
        lines = []
        for pid in process_group(self.process.pid):
            try:
                lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" "))
            except OSError:
                continue
        return [line.decode(errors="replace") for line in lines]

    def wait_until_up(self, timeout: float = START_TIMEOUT_S) -> None:
        """Poll /health until it answers 200; fail with the log if the script exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"mlflow/server.sh exited with {self.process.returncode}:\n{self.log()[-4000:]}",
                    pytrace=False,
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        pytest.fail(f"server not up after {timeout:.0f} s:\n{self.log()[-4000:]}", pytrace=False)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM to the script's pid only; it exec'd mlflow, which must shut down cleanly.

        Returns the exit code, or None when it had to be killed (group-wide SIGKILL).
        """
        if self.stopped:
            return self.process.returncode
        self.stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        deadline = time.monotonic() + 10
        while process_group(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if process_group(self.process.pid):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            return None
        return code


@pytest.fixture
def tracking_server(tmp_path):
    """Factory: `tracking_server(backend_uri, AUTH="1", ...)` starts `mlflow/server.sh` on a
    free loopback port with a temporary artifact folder and waits until it answers
    (`wait=False`: returns at once, call `.wait_until_up()` after other slow work).
    Every server started is stopped at teardown, whatever the test did."""
    started: list[TrackingServer] = []

    def start(backend_uri: str, *, wait: bool = True, **env: str) -> TrackingServer:
        index = len(started)
        port = free_port()
        artifacts = tmp_path / f"artifacts-{index}"
        scratch = tmp_path / f"tmp-{index}"  # server.sh's generated auth ini lands here
        scratch.mkdir()
        log_path = tmp_path / f"server-{index}.log"
        child_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            "MLFLOW_BACKEND_STORE_URI": backend_uri,
            "MLFLOW_ARTIFACTS_DESTINATION": str(artifacts),
            "PORT": str(port),
            "SERVER_WORKERS": "1",  # one worker is enough for a test and starts faster
            "TMPDIR": str(scratch),
            **env,
        }
        child_env.pop("HOST", None)  # the default (loopback) is part of what is tested
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                ["bash", str(SERVER_SH)],
                cwd=REPO_ROOT,
                env=child_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: teardown can reach the workers
            )
        server = TrackingServer(f"http://127.0.0.1:{port}", process, log_path, artifacts)
        started.append(server)
        if wait:
            server.wait_until_up()
        return server

    yield start
    for server in started:
        server.stop()
