"""Start N local `tf.distribute` workers on loopback: one multi-worker training, one MLflow run.

    python -m training.workers workers=2 loss=ce epochs=5     (what `make workers` runs)

Each worker is `python -m training.train strategy=multi_worker <args>` in its own process with
its own `TF_CONFIG`: the same cluster (N free ports on 127.0.0.1) and its own task index.
TensorFlow's convention makes worker 0 the chief: only it opens the MLflow run, evaluates,
logs and keeps checkpoints (`<checkpoint_dir>/<run_id>/`); the others run the same steps
untracked and checkpoint into temporary folders that are deleted. A resumed run
(`-- resume=<run_id>`) has every worker load the chief's checkpoint, so on several machines
`checkpoint_dir` must be shared storage; here it is the local disk.

Every line a worker prints is prefixed with `[worker i]`. When a worker fails, the others
are stopped (SIGTERM: the chief closes its run as KILLED) and its exit code is returned;
Ctrl-C / SIGTERM to this launcher is forwarded to every worker. On several machines, run
`python -m training.train strategy=multi_worker ...` on each with a TF_CONFIG listing all
hosts (see `tf_config`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time

from training.cli import wants_help
from training.errors import ConfigError, TrackingError
from training.help import keys_help
from training.keyvalue import Key, parse_keys
from training.processes import run_workers
from training.reachable import check_store

GRACE_SECONDS = 20  # after SIGTERM, before SIGKILL: lets the chief close its MLflow run


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` distinct ports the OS reports free now (all sockets held until every one is picked,
    so no port repeats; another process may still take one before the workers bind it)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]


def tf_config(addresses: list[str], index: int) -> str:
    """The `TF_CONFIG` of worker `index` in a cluster of workers at `addresses` (host:port)."""
    if not 0 <= index < len(addresses):
        raise ValueError(f"index={index} is out of range for {len(addresses)} workers")
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def worker_command(train_args: list[str]) -> list[str]:
    """`python -m training.train strategy=multi_worker <train_args>`; strategy must not clash."""
    for arg in train_args:
        key, _, value = arg.partition("=")
        if key.strip().replace("-", "_") == "strategy" and value.strip() != "multi_worker":
            raise ValueError(
                f"{arg!r}: local workers always train with strategy=multi_worker; drop it, or "
                "use python -m training.train for strategy=none|mirrored"
            )
    return [sys.executable, "-m", "training.train", "strategy=multi_worker", *train_args]


def launch(train_args: list[str], workers: int = 2, *, timeout: float | None = None) -> int:
    """Run `workers` local workers to completion → 0, or the exit code of the first failure.

    Args:
        train_args: `key=value` overrides for `training.train` (strategy is added).
        workers: number of processes, >= 1.
        timeout: seconds before every worker is stopped (exit code 124); None = no limit.
    """
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    command = worker_command(list(train_args))
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    print(f"starting {workers} workers on {', '.join(addresses)} (worker 0 is the chief)")
    envs = [{**os.environ, "TF_CONFIG": tf_config(addresses, index)} for index in range(workers)]
    return run_workers(command, envs, lambda procs: _wait(procs, timeout), )


def _wait(procs: list[subprocess.Popen], timeout: float | None) -> int:
    """Poll until all exit 0, or one fails (stop the rest), or the timeout passes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        codes = [proc.poll() for proc in procs]
        failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            index, code = failed[0]
            print(f"worker {index} exited with code {code}; stopping the others", file=sys.stderr)
            _stop(procs)
            return code
        if all(c == 0 for c in codes):
            return 0
        if deadline is not None and time.monotonic() > deadline:
            print(f"workers still running after {timeout} s; stopping them", file=sys.stderr)
            _stop(procs)
            return 124
        time.sleep(0.2)


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM the running workers, SIGKILL those still alive after GRACE_SECONDS."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


KEYS = (
    Key("workers", int, 2, "number of local worker processes (>= 1)"),
    Key("timeout", float, 0.0, "seconds before every worker is stopped; 0 = no limit"),
)
USAGE = ("usage: python -m training.workers [workers=2] [timeout=0] [training key=value ...]"
         "   (make workers WORKERS=2 LOSS=ce)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if wants_help(argv):
        print(keys_help(USAGE, KEYS) + "\n  (every other key goes to python -m training.train)")
        return 0
    own = {k.name for k in KEYS}
    mine = [w for w in argv if w.partition("=")[0].strip() in own]
    train_args = [w for w in argv if w not in mine]
    try:
        args = parse_keys(mine, KEYS)
        if args["workers"] < 1:
            raise ConfigError(f"workers={args['workers']} is out of range; valid: an integer >= 1")
        check_store()  # the chief opens it (`training.store`); an unusable one: exit 2 now
        return launch(train_args, args["workers"], timeout=args["timeout"] or None)
    except (ValueError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
