"""Can the tracking store be used? Checked before TensorFlow's ~7 s import and before any run
exists (`training.cli.exit_if_unreachable`, `training.store.open_store`); standard library only.

- `check_reachable`: one `/health` probe of an http(s) server, with the URI's credentials
  (`http://user:pw@host`) sent as a Basic-auth header, never as part of the host name;
- `check_folder`: a folder a store, a checkpoint or a journal file will be written into can
  be created and written (`sqlite:////etc/hostname/sub/mlflow.db` cannot);
- `redact` / `scrub`: a URI, or any message, without the password of a URI in it, for every
  line we print or log (terminal, errors, params, tags, run descriptions, run URLs).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from training.errors import TrackingError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URI = f"sqlite:///{REPO_ROOT / 'mlflow.db'}"
# `scheme://userinfo@`: the credentials part of any URI inside a message.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else the project's SQLite store `mlflow.db`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


# --- secrets out of what we print and log ------------------------------------------------


def redact(uri: str) -> str:
    """`http://alice:pw@host/x` → `http://alice:***@host/x`; a user without a password (often
    a token) → `http://***@host/x`; a URI without credentials is returned as it is."""
    return _USERINFO.sub(_masked, uri)


def _masked(match: re.Match) -> str:
    user, sep, _ = match["userinfo"].partition(":")
    return f"{match['scheme']}{user + ':***' if sep else '***'}@"


def without_credentials(uri: str) -> str:
    """The URI with no userinfo at all (a link a browser can open: `http://host/x`)."""
    return _USERINFO.sub(lambda m: m["scheme"], uri)


def known_secrets(environ=None) -> list[str]:
    """Passwords of the store URIs in the environment (MLFLOW_TRACKING_URI, OPTUNA_STORAGE),
    raw and percent-decoded: `scrub` removes them even where no URI surrounds them."""
    environ = os.environ if environ is None else environ
    found = []
    for name in ("MLFLOW_TRACKING_URI", "OPTUNA_STORAGE"):
        match = _USERINFO.search(environ.get(name, ""))
        if match:
            user, sep, password = match["userinfo"].partition(":")
            secret = password if sep else user
            found += [secret, urllib.parse.unquote(secret)]
    return [s for s in dict.fromkeys(found) if len(s) >= 3]


def scrub(text: str) -> str:
    """Any message with the credentials of every URI in it and the environment's store
    passwords replaced by `***` (exception texts of MLflow, requests, SQLAlchemy quote URIs)."""
    text = redact(text)
    for secret in known_secrets():
        text = text.replace(secret, "***")
    return text


# --- is it there? --------------------------------------------------------------------------


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, before any training, when a tracking server does not answer.

    One GET of `/health` with a `timeout`-second limit (connect and read): a closed port fails
    at once, a socket that accepts but never answers after `timeout` s. Without this, MLflow's
    own client retries with back-off for minutes. Credentials in the URI go in an
    `Authorization: Basic` header (urllib would take `user:pw@host` for the host name).
    Local stores (no http(s) URI) pass.
    """
    if not uri.startswith(("http://", "https://")):
        return
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    url = urllib.parse.urlunsplit(parts._replace(netloc=netloc)).rstrip("/") + "/health"
    request = urllib.request.Request(url)
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 (http(s) only)
            return
    except urllib.error.HTTPError:
        return  # it answered (auth proxies may refuse /health): reachable
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        reason = scrub(str(getattr(exc, "reason", exc)))
        raise TrackingError(f"tracking server {redact(uri)} is unreachable ({reason})") from None


def check_folder(folder: str | Path, what: str) -> None:
    """TrackingError naming `what` (e.g. "checkpoint_dir=/proc/x") when `folder` cannot be
    created or written: it is created (parents too) and a probe file written and removed."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".losslab-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(folder) else ""
        raise TrackingError(f"{what}: the folder {folder} cannot be created or written "
                            f"({reason}{where})") from None


def local_path(uri: str) -> Path | None:
    """The file of a `sqlite:///path` URI, or the folder of a file store; None for a server,
    another database, or an in-memory SQLite."""
    if uri.startswith("sqlite:"):
        path = uri.removeprefix("sqlite:").lstrip("/").split("?")[0]
        if uri.startswith("sqlite:////"):
            path = "/" + path  # sqlite:////abs/path: an absolute path
        return None if path in ("", ":memory:") else Path(path)
    if uri.startswith("file:"):
        return Path(urllib.parse.urlsplit(uri).path)
    if "://" not in uri and uri:
        return Path(uri)
    return None


@contextlib.contextmanager
def store_lock(uri: str):
    """An exclusive lock for the store or Optuna storage `uri` across the processes of this
    machine, held while a schema is created or migrated: `<db>.lock` beside a SQLite file, a
    file in the temp folder for another database (PostgreSQL, MySQL); none for a server."""
    path = local_path(uri)
    if uri.startswith("sqlite:") and path is not None:
        lock = Path(f"{path}.lock")
    elif "://" in uri and not uri.startswith(("http://", "https://", "file:")):
        digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
        lock = Path(tempfile.gettempdir()) / f"losslab-store-{digest}.lock"
    else:
        yield
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_store(uri: str | None = None) -> None:
    """A tracking store that cannot be used ends the command here (TrackingError, exit 2):
    a server that does not answer, or a local SQLite file / file store whose folder cannot be
    created or written. Nothing is opened (MLflow is not imported)."""
    uri = tracking_uri() if uri is None else uri
    check_reachable(uri)
    path = local_path(uri)
    if path is None:
        return
    if path.exists() and uri.startswith("sqlite:") and not path.is_file():
        raise TrackingError(f"MLFLOW_TRACKING_URI={redact(uri)}: {path} is not a file")
    check_folder(path.parent if uri.startswith("sqlite:") else path,
                 f"MLFLOW_TRACKING_URI={redact(uri)}")
