"""The team tracking server (`mlflow/`): what `make server` refuses, what it starts, and, on a
real PostgreSQL (`.ci/postgres.sh`), a training run and basic auth end to end.

Fast tests run `mlflow/server.sh` with SERVER_DRY_RUN=1 (it prints the command instead of
exec'ing it), so they need neither PostgreSQL nor a port. The `server` tests start the real
server twice (~15-25 s each on 2 busy cores) and run one 1-epoch training on `digits`.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_SH = REPO_ROOT / "mlflow" / "server.sh"
COMPOSE = REPO_ROOT / "mlflow" / "docker-compose.yml"
POSTGRES_SH = REPO_ROOT / ".ci" / "postgres.sh"
FAKE_BACKEND = "postgresql://team:db-Secret-123@db.internal:5432/mlflow"
STRONG = "correct-horse-battery-staple"


def server_sh(tmp_path: Path, **env: str | None) -> subprocess.CompletedProcess:
    """Run server.sh in dry-run mode with a clean environment plus `env` (None = unset)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MLFLOW_") and k not in {"AUTH", "HOST", "PORT", "SERVER_WORKERS"}
    }
    base |= {
        "SERVER_DRY_RUN": "1",
        "TMPDIR": str(tmp_path),
        "MLFLOW_BACKEND_STORE_URI": FAKE_BACKEND,
        "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "artifacts"),
    }
    for key, value in env.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return subprocess.run(
        ["bash", str(SERVER_SH)], env=base, capture_output=True, text=True, timeout=60
    )


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# --- refusals: exit code 2, a message naming the variable, no secret echoed ----------------


def test_refuses_to_start_without_a_backend_uri(tmp_path):
    done = server_sh(tmp_path, MLFLOW_BACKEND_STORE_URI=None)
    assert done.returncode == 2
    assert "MLFLOW_BACKEND_STORE_URI is not set" in done.stderr
    assert done.stdout == ""


def test_refuses_a_backend_that_is_not_postgresql(tmp_path):
    done = server_sh(tmp_path, MLFLOW_BACKEND_STORE_URI="sqlite:///mlflow.db")
    assert done.returncode == 2
    assert "postgresql://" in done.stderr and "'sqlite'" in done.stderr


@pytest.mark.parametrize(
    ("password", "message"),
    [
        (None, "needs the admin password in MLFLOW_ADMIN_PASSWORD"),
        ("", "needs the admin password in MLFLOW_ADMIN_PASSWORD"),
        ("password1234", "well-known default password"),
        ("short-pw", "has 8 characters; MLflow requires at least 12"),
    ],
)
def test_auth_refuses_a_missing_default_or_short_admin_password(tmp_path, password, message):
    done = server_sh(tmp_path, AUTH="1", MLFLOW_ADMIN_PASSWORD=password)
    assert done.returncode == 2
    assert message in done.stderr
    if password:
        assert password not in done.stderr + done.stdout
    assert "db-Secret-123" not in done.stderr + done.stdout
    assert not list(tmp_path.glob("losslab-mlflow-auth.*"))  # nothing generated


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"AUTH": "yes"}, "AUTH must be 0 or 1; got 'yes'"),
        ({"PORT": "http"}, "PORT must be 1..65535; got 'http'"),
        ({"PORT": "70000"}, "got '70000'"),
        ({"SERVER_WORKERS": "0"}, "SERVER_WORKERS must be a positive integer; got '0'"),
        (
            {"AUTH": "1", "MLFLOW_ADMIN_PASSWORD": STRONG, "MLFLOW_AUTH_DEFAULT_PERMISSION": "ALL"},
            "one of READ, EDIT, MANAGE, NO_PERMISSIONS; got 'ALL'",
        ),
    ],
)
def test_bad_settings_are_named_with_the_valid_choices(tmp_path, env, named):
    done = server_sh(tmp_path, **env)
    assert done.returncode == 2
    assert named in done.stderr


# --- what it would start -----------------------------------------------------------------


def test_defaults_bind_loopback_port_5000_and_serve_artifacts(tmp_path):
    done = server_sh(tmp_path)
    assert done.returncode == 0, done.stderr
    argv = shlex.split(done.stdout)
    assert argv[1:4] == ["-m", "mlflow", "server"]
    assert option(argv, "--host") == "127.0.0.1"
    assert option(argv, "--port") == "5000"
    assert "--serve-artifacts" in argv
    assert option(argv, "--artifacts-destination") == str(tmp_path / "artifacts")
    assert (tmp_path / "artifacts").is_dir()
    assert "--app-name" not in argv
    # The backend URI reaches mlflow through the environment: never on argv, never printed.
    assert "db-Secret-123" not in done.stdout + done.stderr
    assert "export MLFLOW_TRACKING_URI=http://127.0.0.1:5000" in done.stderr


def test_host_port_and_extra_arguments_come_from_the_caller(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env = base | {
        "SERVER_DRY_RUN": "1",
        "MLFLOW_BACKEND_STORE_URI": FAKE_BACKEND,
        "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "a"),
        "HOST": "0.0.0.0",
        "PORT": "5123",
    }
    done = subprocess.run(
        ["bash", str(SERVER_SH), "--allowed-hosts", "mlflow.example.com"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    argv = shlex.split(done.stdout)
    assert (option(argv, "--host"), option(argv, "--port")) == ("0.0.0.0", "5123")
    assert argv[-2:] == ["--allowed-hosts", "mlflow.example.com"]
    assert "WITHOUT authentication" in done.stderr


def test_auth_mode_uses_the_basic_auth_app_and_prints_client_settings(tmp_path):
    done = server_sh(tmp_path, AUTH="1", MLFLOW_ADMIN_PASSWORD=STRONG)
    assert done.returncode == 0, done.stderr
    argv = shlex.split(done.stdout)
    assert option(argv, "--app-name") == "basic-auth"
    assert "export MLFLOW_TRACKING_USERNAME=admin" in done.stderr
    assert "MLFLOW_TRACKING_PASSWORD" in done.stderr
    assert STRONG not in done.stdout + done.stderr
    assert not list(tmp_path.glob("losslab-mlflow-auth.*"))  # dry run cleans its ini


# --- deployment files ------------------------------------------------------------------


def test_scripts_parse():
    for script in (SERVER_SH, POSTGRES_SH):
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, f"{script}: {done.stderr}"


def test_compose_file_is_yaml_with_loopback_port_and_no_literal_password():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "mlflow"}
    mlflow_service = services["mlflow"]
    assert mlflow_service["command"][-1].endswith("server.sh")
    assert mlflow_service["environment"]["AUTH"] == "1"
    assert all(port.startswith("127.0.0.1:") for port in mlflow_service["ports"])
    assert "ports" not in services["postgres"]
    for service in services.values():
        for key, value in service["environment"].items():
            if "PASSWORD" in key or "SECRET" in key:
                # `${VAR:?message}`: compose refuses to start when the secret is unset.
                assert str(value).startswith("${") and ":?" in str(value), key


# --- the skip/fail rule for the PostgreSQL tests ---------------------------------------------


def test_missing_postgres_skips_locally_but_fails_under_ci(postgres_requirement):
    uri = "postgresql://u:p@127.0.0.1:1/d"
    assert postgres_requirement({"LOSSLAB_TEST_POSTGRES_URI": uri}) == uri
    with pytest.raises(pytest.skip.Exception, match="LOSSLAB_TEST_POSTGRES_URI is not set"):
        postgres_requirement({})
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        postgres_requirement({"CI": "true"})
    with pytest.raises(pytest.fail.Exception):
        postgres_requirement({"CI": "", "LOSSLAB_TEST_POSTGRES_URI": ""})


# --- against a real PostgreSQL ---------------------------------------------------------------


def _all_artifacts(client, run_id: str, path: str = "") -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        found += _all_artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return found


def _query(uri: str, sql: str, **params) -> list[tuple]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sqlalchemy.text(sql), params)]
    finally:
        engine.dispose()


def _stand_in_run(client, tmp_path: Path) -> tuple[str, bytes]:
    """A run made with plain MLflow calls: a param, a 3-step metric history, an artifact."""
    experiment_id = client.create_experiment("server-round-trip")
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "loss", "ce")
    for step, value in enumerate([0.9, 0.5, 0.25], start=1):
        client.log_metric(run_id, "train/loss", value, step=step)
    payload = secrets.token_bytes(4096)
    source = tmp_path / "stand_in" / "blob.bin"
    source.parent.mkdir()
    source.write_bytes(payload)
    client.log_artifact(run_id, str(source), "blobs")
    client.set_terminated(run_id)
    return run_id, payload


@pytest.mark.server
@pytest.mark.slow
def test_training_run_is_stored_in_postgres_and_read_back_through_the_server(
    fresh_database, tracking_server, tiny, monkeypatch, tmp_path
):
    server = tracking_server(fresh_database, wait=False)
    # Importing TensorFlow takes seconds: overlap it with the server's start.
    import mlflow

    from training.train import train

    server.wait_until_up()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    client = mlflow.MlflowClient(tracking_uri=server.url)

    # 1. The server alone, with plain MLflow calls (independent of the trainer).
    stand_in, payload = _stand_in_run(client, tmp_path)
    run = client.get_run(stand_in)
    assert (run.info.status, run.data.params) == ("FINISHED", {"loss": "ce"})
    history = client.get_metric_history(stand_in, "train/loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.9), (2, 0.5), (3, 0.25)]
    fetched = client.download_artifacts(stand_in, "blobs/blob.bin", str(tmp_path))
    assert Path(fetched).read_bytes() == payload

    # 2. A real training run (1 epoch on digits) logging to the server from the environment.
    previous_uri = mlflow.get_tracking_uri()
    try:
        result = train(tiny(loss="ce", epochs=1))
    finally:
        mlflow.set_tracking_uri(previous_uri)  # train() sets the global URI
    run_id = result["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["loss"] == "ce" and run.data.params["epochs"] == "1"
    for key in ("train/loss", "val/accuracy"):
        assert [m.step for m in client.get_metric_history(run_id, key)] == [1], key
    assert run.data.metrics["test/accuracy"] == pytest.approx(result["accuracy"])

    # Artifacts: uploaded through the server into its artifact folder, downloaded intact.
    artifacts = _all_artifacts(client, run_id)
    assert "weights/final.weights.h5" in artifacts
    models = client.search_logged_models([run.info.experiment_id])
    assert [m.source_run_id for m in models] == [run_id]  # the LoggedModel, through the server
    assert "MLmodel" in {a.path for a in client.list_logged_model_artifacts(models[0].model_id)}
    assert any(path.startswith("plots/") for path in artifacts)
    local = tmp_path / "checkpoints" / run_id / "final.weights.h5"  # what train() uploaded
    downloaded = Path(client.download_artifacts(run_id, "weights/final.weights.h5", str(tmp_path)))
    assert downloaded.read_bytes() == local.read_bytes()
    stored = list(server.artifacts.rglob(f"{run_id}/artifacts/weights/final.weights.h5"))
    assert len(stored) == 1 and stored[0].read_bytes() == local.read_bytes()

    # The run really lives in PostgreSQL, not in some fallback store.
    rows = _query(fresh_database, "SELECT run_uuid, status FROM runs ORDER BY start_time")
    assert rows == [(stand_in, "FINISHED"), (run_id, "FINISHED")]

    # `exec`: SIGTERM to the script's pid reaches mlflow, which stops with its workers.
    assert server.stop() == 0, server.log()[-3000:]


@pytest.mark.server
@pytest.mark.slow
def test_basic_auth_refuses_anonymous_requests_and_accepts_the_admin(
    fresh_database, tracking_server, monkeypatch
):
    import mlflow
    import requests
    from sqlalchemy.engine import make_url

    password = "losslab-" + secrets.token_hex(12)
    server = tracking_server(fresh_database, AUTH="1", MLFLOW_ADMIN_PASSWORD=password)
    search = f"{server.url}/api/2.0/mlflow/experiments/search"
    params = {"max_results": 5}

    assert requests.get(search, params=params, timeout=30).status_code == 401
    wrong = requests.get(search, params=params, auth=("admin", password + "x"), timeout=30)
    assert wrong.status_code == 401
    admin = requests.get(search, params=params, auth=("admin", password), timeout=30)
    assert admin.status_code == 200
    assert [e["name"] for e in admin.json()["experiments"]] == ["Default"]

    # The client, with credentials from the environment as the README tells users.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    client = mlflow.MlflowClient(tracking_uri=server.url)
    experiment_id = client.create_experiment("auth-check")
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "val/accuracy", 0.5, step=1)
    assert client.get_run(run_id).data.metrics == {"val/accuracy": 0.5}

    # The auth store is PostgreSQL too (same database), holding the one admin user.
    rows = _query(fresh_database, "SELECT username, is_admin FROM users")
    assert rows == [("admin", True)]

    # Secrets: not on any process's argv, not in the generated ini (mode 0600) nor the log.
    db_password = make_url(fresh_database).password
    for line in server.command_lines():
        assert password not in line and db_password not in line
    (ini,) = (server.log_path.parent / "tmp-0").glob("losslab-mlflow-auth.*/basic_auth.ini")
    assert ini.stat().st_mode & 0o777 == 0o600
    text = ini.read_text()
    assert "database_uri = postgresql" in text
    assert password not in text and db_password not in text
    assert password not in server.log() and db_password not in server.log()
