"""Faults during a run: a crash, a NaN, Ctrl-C / SIGTERM, an unreachable tracking server.

In-process through `run_cli(train, argv)` where possible; the signals need a real process.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest

from training.cli import run_cli
from training.run.callbacks import StopOnNonFinite
from training.train import main as train_main
from training.train import train

REPO_ROOT = Path(__file__).resolve().parents[3]


def _only_run(uri: str):
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


# --- an exception during training ----------------------------------------------------------


def _crash_at_first_batch(monkeypatch):
    def boom(self, batch, logs=None):
        raise RuntimeError("disk on fire\nsecond line of the message")

    monkeypatch.setattr(StopOnNonFinite, "on_train_batch_end", boom)


@pytest.mark.parametrize("debug", ["", "1"])
def test_exception_fails_the_run_with_one_line(debug, tiny, mlflow_store, monkeypatch, capsys):
    _crash_at_first_batch(monkeypatch)
    monkeypatch.setenv("DEBUG", debug)
    argv = ["epochs=1", f"checkpoint_dir={tiny().checkpoint_dir}"]

    assert run_cli(train, argv) == 1

    run = _only_run(mlflow_store)
    assert run.info.status == "FAILED"
    assert run.data.tags["losslab.error"] == (
        "RuntimeError: disk on fire\nsecond line of the message"
    )
    err = capsys.readouterr().err
    last = err.rstrip("\n").splitlines()[-1]
    assert last == (
        "error: RuntimeError: disk on fire second line of the message "
        f"(run {run.info.run_id} closed as FAILED; DEBUG=1 for the traceback)"
    )
    assert ("Traceback (most recent call last)" in err) == bool(debug)
    if not debug:  # one line about it, no traceback
        assert [line for line in err.splitlines() if "disk on fire" in line] == [last]


def test_a_sigterm_that_surfaces_as_another_error_closes_the_run_killed(
        tiny, mlflow_store, monkeypatch, capsys):
    """TensorFlow's tracing can re-raise the exception of a signal handler as an error of its
    own (1 of 10 timed SIGTERMs ended exit 1, its run FAILED): after a SIGTERM, whatever error
    ends the run closes it KILLED, and the command exits 143."""
    from training import cli

    def converted(self, batch, logs=None):
        cli._signalled.append(signal.SIGTERM)  # what cli._raise_killed records
        raise TypeError("an error TensorFlow raised while tracing")

    monkeypatch.setattr(StopOnNonFinite, "on_train_batch_end", converted)
    assert run_cli(train, ["epochs=1", f"checkpoint_dir={tiny().checkpoint_dir}"]) == 143
    run = _only_run(mlflow_store)
    assert run.info.status == "KILLED"
    err = capsys.readouterr().err
    assert f"terminated (SIGTERM): run {run.info.run_id} closed as KILLED" in err
    assert not cli.stop_requested()  # cleared for the next command in this process


# --- a non-finite loss ---------------------------------------------------------------------


def test_non_finite_loss_stops_at_that_batch(tiny, mlflow_store, monkeypatch, capsys):
    """learning_rate=1e30 blows the weights up within a few steps; the callback must stop at
    the first batch whose (running-mean) loss is not finite, and not one batch later."""
    seen = []
    check = StopOnNonFinite.on_train_batch_end

    def spy(self, batch, logs=None):
        seen.append((self._epoch, batch, float(logs["loss"])))
        check(self, batch, logs)

    monkeypatch.setattr(StopOnNonFinite, "on_train_batch_end", spy)
    argv = ["epochs=2", "learning_rate=1e30", "lr_schedule=constant",
            f"checkpoint_dir={tiny().checkpoint_dir}"]

    assert run_cli(train, argv) == 1

    first_bad = next(i for i, (_, _, v) in enumerate(seen) if not math.isfinite(v))
    assert len(seen) == first_bad + 1  # nothing ran after the bad batch
    epoch, step, _ = seen[first_bad]
    reason = f"non-finite loss at epoch {epoch + 1}, step {step + 1}"
    run = _only_run(mlflow_store)
    assert run.info.status == "FAILED"
    assert run.data.tags["losslab.error"] == f"NonFiniteLoss: {reason}"
    assert reason in capsys.readouterr().err


# --- the tracking store does not answer ----------------------------------------------------


class _SilentServer:
    """Accepts TCP connections and reads requests but never answers (a hung server)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[tuple[float, bytes]] = []
        self._open = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._open.append(conn)
            self.requests.append((time.monotonic(), conn.recv(4096).split(b"\r\n")[0]))

    def close(self):
        for conn in self._open:
            conn.close()
        self.sock.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_server():
    server = _SilentServer()
    yield server
    server.close()


def test_unreachable_store_fails_fast_before_any_work(monkeypatch, silent_server, capsys):
    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded although the tracking store is unreachable")

    monkeypatch.setattr("training.run.trainer.build_splits", no_data)
    for uri in (f"http://127.0.0.1:{_closed_port()}", f"http://127.0.0.1:{silent_server.port}"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        started = time.monotonic()
        assert run_cli(train, ["epochs=1"]) == 2
        elapsed = time.monotonic() - started
        assert elapsed < 15, (uri, elapsed)
        err = capsys.readouterr().err
        assert err.startswith(f"error: tracking server {uri} is unreachable"), err
    # The hung server saw one health probe and nothing that would create a run.
    assert [line for _, line in silent_server.requests] == [b"GET /health HTTP/1.1"]


@pytest.mark.slow
def test_unreachable_store_real_process(silent_server, tmp_path):
    """A real process: exit 2 naming the URI, within 15 s of its first request to the store
    (`python -m training.train` asks before TensorFlow's import, which takes ~7 s of CPU)."""
    uri = f"http://127.0.0.1:{silent_server.port}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    proc = subprocess.run(
        [sys.executable, "-m", "training.train", "epochs=1", f"checkpoint_dir={tmp_path}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    ended = time.monotonic()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: tracking server {uri} is unreachable" in proc.stderr
    assert "epoch 1/1" not in proc.stdout
    (first_request, line), *_ = silent_server.requests
    assert line == b"GET /health HTTP/1.1"
    assert ended - first_request < 15
    assert list(tmp_path.iterdir()) == []  # no checkpoint folder: nothing started


# --- Ctrl-C and SIGTERM --------------------------------------------------------------------


def _start(store: str, ckpt: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PYTHONUNBUFFERED": "1"}
    argv = ["epochs=60", "lr_schedule=constant", f"checkpoint_dir={ckpt}", *extra]
    # Default SIGINT handling in the child: a test run started in the background (`make test
    # &`, nohup, a CI runner) inherits SIGINT ignored, and an ignored SIGINT stays ignored
    # across exec; Python then never raises KeyboardInterrupt, as it should not.
    return subprocess.Popen(
        [sys.executable, "-m", "training.train", *argv],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_checkpoint(ckpt: Path, proc: subprocess.Popen, timeout: float = 400) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = list(ckpt.glob("*/state.json"))
        if states:
            return states[0].parent
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.5)
    raise AssertionError(f"no checkpoint in {ckpt} after {timeout} s")


@pytest.mark.slow
def test_sigint_and_sigterm_keep_the_checkpoint_and_close_killed(tmp_path, new_store,
                                                               monkeypatch, capsys):
    """Both signals in parallel processes (each ~10 s of TF import); then the SIGTERM'd run
    is resumed through the command line's entry point and finishes as the same run."""
    cases = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -9}
    procs = {}
    for sig in cases:
        store = new_store(tmp_path / f"{sig.name}.db")
        procs[sig] = (store, tmp_path / sig.name, _start(store, tmp_path / sig.name))
    folders = {sig: _wait_for_checkpoint(ckpt, proc) for sig, (_, ckpt, proc) in procs.items()}
    for sig, (_, _, proc) in procs.items():
        proc.send_signal(sig)
    for sig, (store, _, proc) in procs.items():
        _, err = proc.communicate(timeout=120)
        if sig == signal.SIGKILL:  # nothing can close its run: the next command does (below)
            assert proc.returncode == -9 and _only_run(store).info.status == "RUNNING"
            continue
        run = _only_run(store)
        assert proc.returncode == cases[sig], err[-2000:]
        assert run.info.status == "KILLED"
        assert f"run {run.info.run_id} closed as KILLED" in err
        assert f"make train RESUME={run.info.run_id}" in err
        state = json.loads((folders[sig] / "state.json").read_text())
        assert state["epoch"] >= 1 and (folders[sig] / "last.keras").is_file()
        assert folders[sig].name == run.info.run_id
        assert run.data.tags["losslab.checkpoint_dir"] == str(folders[sig].resolve())

    # Resume the SIGTERM'd run: config from its config.json, one more epoch. Through the
    # command line's own entry point, in this process (a third TF import would cost ~10 s;
    # test_cli.py and test_bad_input.py start the real command).
    store, ckpt, _ = procs[signal.SIGTERM]
    run_id = folders[signal.SIGTERM].name
    done = json.loads((folders[signal.SIGTERM] / "state.json").read_text())["epoch"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    assert train_main([f"resume={run_id}", f"epochs={done + 1}"]) == 0
    out = capsys.readouterr().out
    assert f"resuming run {run_id} after epoch {done}" in out
    assert "lr_schedule=constant" in out  # from the run, not the defaults
    run = _only_run(store)
    assert run.info.status == "FINISHED"
    history = mlflow.MlflowClient(store).get_metric_history(run_id, "val/accuracy")
    assert sorted(m.step for m in history) == list(range(1, done + 2))

    _stale_runs_are_closed_by_the_next_command(procs[signal.SIGKILL][0], procs[signal.SIGKILL][2])


def _fake_run(client, experiment_id: str, name: str, **tags: str) -> str:
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    return run.info.run_id


def _stale_runs_are_closed_by_the_next_command(store: str, killed: subprocess.Popen) -> None:
    """Issue 28: a run whose process was killed with SIGKILL is marked KILLED by the next
    command that opens the store (here `make report`, which then exits 2: no compare), one
    line per run; so is a run of another host whose heartbeat is old. A run of another host
    with a fresh heartbeat, a live run of this host (whatever its heartbeat) and a run
    without our tags are never touched. `make runs-clean` does the same on demand."""
    from training.store import HEARTBEAT_TAG, HOST_TAG, PID_TAG, START_TAG, _process_start

    client = mlflow.MlflowClient(store)
    (killed_run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    tags = killed_run.data.tags
    assert (tags[HOST_TAG], tags[PID_TAG]) == (socket.gethostname(), str(killed.pid))
    experiment = killed_run.info.experiment_id
    now = time.time()

    def beat(age: float) -> str:
        return datetime.datetime.fromtimestamp(now - age, datetime.timezone.utc).isoformat()

    me = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
          START_TAG: _process_start(os.getpid())}
    other = {HOST_TAG: "another-host", PID_TAG: "4242"}
    fresh = _fake_run(client, experiment, "fresh", **other, **{HEARTBEAT_TAG: beat(60)})
    old = _fake_run(client, experiment, "old", **other, **{HEARTBEAT_TAG: beat(7200)})
    live = _fake_run(client, experiment, "live", **me, **{HEARTBEAT_TAG: beat(7200)})
    foreign = _fake_run(client, experiment, "foreign")
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    report = subprocess.run([sys.executable, "-m", "training.report"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 2, report.stderr[-2000:]
    marked = [line for line in report.stdout.splitlines() if line.startswith("marked run")]
    assert len(marked) == 2, report.stdout
    assert (f"marked run {killed_run.info.run_id} ({killed_run.info.run_name}) KILLED: its "
            f"process {killed.pid} on {socket.gethostname()} is gone") in marked
    (line,) = [m for m in marked if m.startswith(f"marked run {old} (old) KILLED: ")]
    assert line.startswith(f"marked run {old} (old) KILLED: no heartbeat from another-host "
                           "(process 4242) for 72") and line.endswith(" s (limit 900 s)"), line
    status = {r: client.get_run(r).info.status
              for r in (killed_run.info.run_id, old, fresh, live, foreign)}
    assert status == {killed_run.info.run_id: "KILLED", old: "KILLED", fresh: "RUNNING",
                      live: "RUNNING", foreign: "RUNNING"}
    assert "gone" in client.get_run(killed_run.info.run_id).data.tags["losslab.status_reason"]

    # On demand, with a shorter limit: now the fresh run of the other host is stale too.
    clean = subprocess.run([sys.executable, "-m", "training.store", "stale_after=30"],
                           cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr[-2000:]
    assert clean.stdout.splitlines()[-1] == f"1 stale run(s) marked KILLED in {store}"
    assert f"marked run {fresh} (fresh) KILLED: no heartbeat from another-host" in clean.stdout
    assert client.get_run(live).info.status == "RUNNING"


def test_signals_held_defers_a_signal_until_the_block_ends():
    """A SIGTERM inside the block (the checkpoint's two renames) runs its handler only after."""
    from training.run.checkpoint import _signals_held

    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with _signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # a pending Python handler would run here, inside the block
            inside = list(seen)
        assert inside == [] and seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
