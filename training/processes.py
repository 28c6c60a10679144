"""Local worker processes: start N children of one command, prefix every line each prints with
`[worker i] `, forward Ctrl-C / SIGTERM to them, and wait. Both local launchers use it:
`training.workers` (one tf.distribute training) and `training.study.tune` (one study).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import typing
from collections.abc import Callable, Mapping, Sequence

T = typing.TypeVar("T")


def run_workers(command: Sequence[str], envs: Sequence[Mapping[str, str]],
                wait: Callable[[list[subprocess.Popen]], T]) -> T:
    """Start one `command` per environment in `envs` (worker i gets `envs[i]`) → `wait(procs)`.

    While `wait` runs, SIGINT and SIGTERM to this process go to every worker still running;
    the previous handlers are back, and every worker's output printed, when this returns.

    Args:
        command: the workers' command line, the same for each.
        envs: one environment per worker.
        wait: blocks until the workers are done (its own policy: wait for all, stop the
            others on a failure, a timeout) and returns the result.
    """
    procs, pumps = [], []
    # Each worker in its own session: a terminal's Ctrl-C reaches this launcher only, which
    # forwards it once (in the terminal's process group each worker would get it twice).
    for index, env in enumerate(envs):
        proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            list(command), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)
        procs.append(proc)
        pump = threading.Thread(target=_pump, args=(proc.stdout, f"[worker {index}] "))
        pump.start()
        pumps.append(pump)

    def forward(signum, frame):
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return wait(procs)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for pump in pumps:
            pump.join()


def _pump(stream, prefix: str) -> None:
    for line in iter(stream.readline, ""):
        sys.stdout.write(f"{prefix}{line}")
        sys.stdout.flush()
    stream.close()
