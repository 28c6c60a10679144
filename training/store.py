"""The one way every command opens an MLflow store, and the runs nobody will ever close.

`open_store()` is called by train, compare, tune (and its workers), report and landscape:

1. the store is checked (`training.reachable.check_store`: a server that answers, a SQLite
   folder that can be written), so a bad `MLFLOW_TRACKING_URI` is exit 2 before any run;
2. MLflow builds its store object (for a new SQLite file: ~50 Alembic migrations) holding an
   exclusive lock file beside the database (`<db>.lock`), so N processes started at the same
   instant on a new store never migrate it together (two `make tune` once left a store
   half-migrated for good: `table _alembic_tmp_metrics already exists`). Another local
   database (PostgreSQL, MySQL) is locked the same way through a file in the temp folder,
   which serialises the processes of one machine;
3. stale runs are closed (`clean_stale_runs`), once per process and store.

A run that a process killed with SIGKILL (or a machine that died) leaves RUNNING cannot close
itself. So every run `training.run.tracking.open_run` opens carries the tags `losslab.host`,
`losslab.pid`, `losslab.process_start` (the process's start time, so a recycled PID is not
taken for it) and `losslab.heartbeat` (UTC, ISO 8601), renewed every `HEARTBEAT_S` by a
thread and at every epoch end. A RUNNING run is marked KILLED, with one printed line, when
- it was started on this host and its process is gone; or
- it was started on another host and its heartbeat is older than `stale_after_s()`
  (`LOSSLAB_STALE_AFTER_S`, default 900 s = 15 missed heartbeats).
A live run of this host is never touched, whatever its heartbeat; nor a run of another host
whose heartbeat is fresh; nor a run without these tags (made by other code). `make runs-clean`
(`python -m training.store`) does the same on demand.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import sys
import threading
import time
from pathlib import Path

import mlflow
import sqlalchemy
from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.db.utils import _initialize_tables

from training.errors import BAD_INPUT, ConfigError, TrackingError
from training.keyvalue import Key, parse_keys
from training.reachable import (  # noqa: F401 (store_lock: re-exported)
    check_store,
    local_path,
    redact,
    scrub,
    store_lock,
    tracking_uri,
)

HOST_TAG, PID_TAG, START_TAG = "losslab.host", "losslab.pid", "losslab.process_start"
HEARTBEAT_TAG = "losslab.heartbeat"
REASON_TAG = "losslab.status_reason"
HEARTBEAT_S = 60.0
STALE_AFTER_S = 900.0

_opened: set[str] = set()  # stores this process has opened (and cleaned)


# --- opening ----------------------------------------------------------------------------------


def open_store(uri: str | None = None, *, clean: bool = True) -> mlflow.MlflowClient:
    """The store at `uri` (default: `MLFLOW_TRACKING_URI` or `mlflow.db`), checked, created or
    migrated under `store_lock`, made MLflow's current URI, its stale runs closed (once per
    process) → a client. TrackingError (exit 2) when it cannot be used."""
    uri = tracking_uri() if uri is None else uri
    check_store(uri)
    if redact(uri) != uri:  # MLflow would print run links with the credentials in them
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    mlflow.set_tracking_uri(uri)
    if uri in _opened:
        return mlflow.MlflowClient(uri)
    with store_lock(uri):
        _create_sqlite_atomically(uri)
        # The first client builds MLflow's store object (cached per URI by MLflow): for an
        # older SQLite file that is where the schema is migrated.
        try:
            client = mlflow.MlflowClient(uri)
            client.search_experiments(max_results=1)
        except MlflowException as exc:  # refused credentials, a foreign database, ...
            first = (scrub(exc.message).strip().splitlines() or [""])[0]
            raise TrackingError(f"the tracking store {redact(uri)} cannot be used "
                                f"({first})") from None
    if clean:
        try:
            clean_stale_runs(client)
        except Exception as exc:  # noqa: BLE001 (a busy store must not stop the command)
            print(f"note: stale runs not checked this time ({type(exc).__name__}: "
                  f"{scrub(str(exc)).splitlines()[0] if str(exc) else ''})", flush=True)
    _opened.add(uri)
    return client


def _create_sqlite_atomically(uri: str) -> None:
    """A new SQLite store gets MLflow's schema in a temporary file beside it, renamed into
    place when complete: a SIGTERM or SIGKILL halfway through the ~40 migrations (seconds,
    more under load) leaves no half-migrated store that every later command refuses ("table
    secrets already exists"). Uses MLflow's own
    `_initialize_tables` (create_all + alembic upgrade), the call its SQLAlchemy store makes
    on a new database."""
    path = local_path(uri) if uri.startswith("sqlite:") else None
    if path is None or (path.exists() and path.stat().st_size > 0):
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    engine = sqlalchemy.create_engine(f"sqlite:///{temporary}")
    try:
        _initialize_tables(engine)
    except BaseException:  # a signal or an error halfway: nothing half-made stays behind
        engine.dispose()
        temporary.unlink(missing_ok=True)
        raise
    engine.dispose()
    os.replace(temporary, path)


# --- which process a run belongs to -----------------------------------------------------------


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22); "" where
    there is no /proc. With the PID it names one process: a PID is reused, the pair is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    return not start or _process_start(pid) in ("", start)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def liveness_tags() -> dict[str, str]:
    """The tags that say which process holds a run, and that it is alive now."""
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), START_TAG: _process_start(pid),
            HEARTBEAT_TAG: _now()}


def heartbeat_tag() -> RunTag:
    return RunTag(HEARTBEAT_TAG, _now())


@contextlib.contextmanager
def heartbeat(run_id: str, interval: float = HEARTBEAT_S):
    """Renew the run's heartbeat tag every `interval` s from a daemon thread until the block
    ends (a run busy with one long epoch, an evaluation, or a compare parent whose children
    train, stays fresh). The run got its `liveness_tags` when it was started or resumed."""
    client = mlflow.MlflowClient()
    stop = threading.Event()

    def beat():
        while not stop.wait(interval):
            with contextlib.suppress(Exception):  # a missed beat is not an error
                client.log_batch(run_id, tags=[heartbeat_tag()])

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


# --- stale runs -------------------------------------------------------------------------------


def stale_after_s() -> float:
    raw = os.environ.get("LOSSLAB_STALE_AFTER_S", "").strip()
    try:
        value = float(raw) if raw else STALE_AFTER_S
    except ValueError:
        value = -1
    if not value > 0:
        raise ConfigError(f"LOSSLAB_STALE_AFTER_S={raw!r} is not valid; valid: seconds > 0")
    return value


def why_stale(tags: dict[str, str], limit: float, host: str | None = None,
              now: float | None = None) -> str | None:
    """Why a RUNNING run with these tags is dead, or None (alive, or not ours to judge)."""
    host = socket.gethostname() if host is None else host
    owner, pid = tags.get(HOST_TAG), tags.get(PID_TAG, "")
    if not owner or not pid.isdigit():
        return None  # not opened by open_run: nothing says who holds it
    if owner == host:
        if _alive(int(pid), tags.get(START_TAG, "")):
            return None
        return f"its process {pid} on {host} is gone"
    try:
        beat = datetime.datetime.fromisoformat(tags.get(HEARTBEAT_TAG, "")).timestamp()
    except ValueError:
        return None
    age = (time.time() if now is None else now) - beat
    if age <= limit:
        return None
    return f"no heartbeat from {owner} (process {pid}) for {age:.0f} s (limit {limit:.0f} s)"


def clean_stale_runs(client: mlflow.MlflowClient, limit: float | None = None) -> list[str]:
    """Mark every stale RUNNING run of the store KILLED (see the module), one line each on
    stdout; → their ids."""
    limit = stale_after_s() if limit is None else limit
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    marked = []
    for run in client.search_runs(experiments, "attributes.status = 'RUNNING'",
                                  max_results=5000):
        why = why_stale(run.data.tags, limit)
        if why is None:
            continue
        client.set_tag(run.info.run_id, REASON_TAG, f"marked KILLED as stale: {why}")
        client.set_terminated(run.info.run_id, "KILLED")
        marked.append(run.info.run_id)
        print(f"marked run {run.info.run_id} ({run.info.run_name}) KILLED: {why}", flush=True)
    return marked


# --- make runs-clean --------------------------------------------------------------------------

KEYS = (Key("stale_after", float, 0.0,
            "seconds without a heartbeat after which a run of another host is stale "
            "(default: LOSSLAB_STALE_AFTER_S, else 900)"),)
USAGE = ("usage: python -m training.store [stale_after=SECONDS]   (make runs-clean "
         "ARGS=\"stale_after=600\")\n  stale_after: seconds without a heartbeat after which a "
         "RUNNING run of another host is stale (default: LOSSLAB_STALE_AFTER_S, else 900)")


def main(argv: list[str] | None = None) -> int:
    """`make runs-clean`: close the store's stale RUNNING runs now. Exit 0, or 2 for a bad
    argument or an unusable store."""
    argv = sys.argv[1:] if argv is None else argv
    if any(word in ("--help", "-h", "help") for word in argv):
        print(USAGE)
        return 0
    try:
        args = parse_keys(argv, KEYS)
        if args["stale_after"] < 0:
            raise ConfigError(f"stale_after={args['stale_after']:g} is out of range; valid: >= 0")
        client = open_store(clean=False)
        marked = clean_stale_runs(client, args["stale_after"] or None)
    except BAD_INPUT as exc:
        print(f"error: {scrub(str(exc))}", file=sys.stderr)
        return 2
    print(f"{len(marked)} stale run(s) marked KILLED in {redact(tracking_uri())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
