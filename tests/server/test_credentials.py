"""Credentials in `MLFLOW_TRACKING_URI` (`http://user:password@host`), against a real
`mlflow server --app-name basic-auth` on a free loopback port (SQLite behind it, so no
PostgreSQL is needed): the reachability probe authenticates, training works, and the password
is never printed nor logged (terminal, errors, params, tags, description, artifacts).

One server start (~15-25 s on 2 busy cores) and one 1-epoch training in a real process.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """(url, password): `mlflow server` with basic auth, admin user `admin`."""
    root = tmp_path_factory.mktemp("auth-server")
    password = "pw-" + secrets.token_hex(10)
    ini = root / "basic_auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = READ\n"
                   f"database_uri = sqlite:///{root / 'auth.db'}\nadmin_username = admin\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
           "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
           "MLFLOW_AUTH_ADMIN_PASSWORD": password,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(root / "server.log", "wb")  # noqa: SIM115 (closed at teardown)
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{root / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--serve-artifacts", "--artifacts-destination",
         str(root / "artifacts"), "--app-name", "basic-auth"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            assert server.poll() is None, (root / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not start"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        yield url, password
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
        log.close()


def _run(args: list[str], uri: str, tmp_path: Path, timeout: float = 600):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
           "MLFLOW_TRACKING_URI": uri}
    env.pop("DEBUG", None)
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_credentials_in_the_uri_train_and_are_never_shown(auth_server, tmp_path):
    import mlflow

    from training.reachable import check_reachable

    url, password = auth_server
    host = url.removeprefix("http://")
    with_password = f"http://admin:{password}@{host}"
    check_reachable(with_password)  # Basic auth header: once "Name or service not known"

    # A wrong password: exit 2 at the first request, the password not shown.
    wrong = _run(["training.store"], f"http://admin:{password}x@{host}", tmp_path)
    assert wrong.returncode == 2, wrong.stderr[-2000:]
    assert wrong.stderr.startswith(f"error: the tracking store http://admin:***@{host} cannot "
                                   "be used (API request to endpoint")
    assert password not in wrong.stdout + wrong.stderr

    # A run that does not exist: exit 2, the store named without its password.
    missing = _run(["training.train", "resume=0123abc"], with_password, tmp_path)
    assert missing.returncode == 2, missing.stderr[-2000:]
    assert (f"error: resume=0123abc: no such run in the tracking store http://admin:***@{host}"
            in missing.stderr)
    assert password not in missing.stdout + missing.stderr

    # Training: works, prints nothing secret; the run's link carries no credentials.
    done = _run(["training.train", "epochs=1", f"checkpoint_dir={tmp_path / 'ckpt'}"],
                with_password, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert password not in done.stdout + done.stderr
    (link,) = [line for line in done.stdout.splitlines() if line.startswith("view it: ")]
    assert link.startswith(f"view it: {url}/#/experiments/")
    run_id = link.split("?", 1)[0].rsplit("/", 1)[-1]  # the link ends ?workflowType=...

    # Nothing secret recorded: params, tags (description included), inputs, artifacts.
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = (
        "admin", password)
    try:
        client = mlflow.MlflowClient(url)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert "mlflow.note.content" in run.data.tags
        recorded = "\n".join(f"{k}={v}" for k, v in [*run.data.params.items(),
                                                     *run.data.tags.items()])
        recorded += "\n".join(f"{i.dataset.source} {i.tags}" for i in run.inputs.dataset_inputs)
        assert password not in recorded
        local = Path(client.download_artifacts(run_id, "", str(tmp_path / "artifacts")))
        files = [p for p in local.rglob("*") if p.is_file()]
        assert any(p.name == "config.json" for p in files)
        for path in files:
            assert password.encode() not in path.read_bytes(), path
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
