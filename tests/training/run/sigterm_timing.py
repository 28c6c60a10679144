"""Time from SIGTERM to exit of a real training run and of a real tune worker.

    .venv/bin/python tests/training/run/sigterm_timing.py [tries=10]

Each try starts the command on a new SQLite store, waits until its (first) run has written
`initial.weights.h5` (the moment `fit` starts tracing), then waits a further 0, 0.4, 0.8, ...
s (tracing, training, evaluating, checkpointing, logging), sends SIGTERM and times the exit.
Prints every try and the median and max per command; `test_tune_signals.py` uses `sigterm`
for one try. Not collected by pytest (no test_ prefix): 20 tries cost ~5 min of 2 cores.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
COMMANDS = {
    "train": ["training.train", "epochs=30", "lr_schedule=constant"],
    "tune": ["training.tune", "loss=focal", "trials=1", "epochs=30"],
}


def sigterm(kind: str, folder: Path, delay: float, store: str | None = None):
    """Start `kind` ("train" or "tune") in `folder`, SIGTERM it `delay` s after its run began
    fitting → (exit code, seconds from the signal to the exit, its stdout + stderr). The
    seconds until its "terminated (SIGTERM)" line (the run closed) are in `sigterm.closed`."""
    store = store or f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PYTHONUNBUFFERED": "1"}
    env.pop("OPTUNA_STORAGE", None)
    ckpt = folder / "ckpt"
    out = open(folder / "output.txt", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", *COMMANDS[kind], f"checkpoint_dir={ckpt}"], cwd=REPO_ROOT,
        env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 400
        while not list(ckpt.glob("*/initial.weights.h5")):
            assert proc.poll() is None, (folder / "output.txt").read_text()[-3000:]
            assert time.monotonic() < deadline, "no run started"
            time.sleep(0.05)
        time.sleep(delay)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        sigterm.closed = None
        while proc.poll() is None and time.monotonic() < sent + 120:
            if sigterm.closed is None and "terminated (SIGTERM)" in (
                    folder / "output.txt").read_text():
                sigterm.closed = time.monotonic() - sent
            time.sleep(0.02)
        proc.wait(timeout=1)
        seconds = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
    return proc.returncode, seconds, (folder / "output.txt").read_text()


def main(tries: int = 10) -> None:
    for kind in COMMANDS:
        times = []
        for index in range(tries):
            folder = Path(tempfile.mkdtemp(prefix=f"sigterm-{kind}-"))
            delay = 0.4 * index
            code, seconds, output = sigterm(kind, folder, delay)
            times.append(seconds)
            closed = "?" if sigterm.closed is None else f"{sigterm.closed:.2f}"
            print(f"{kind} try {index + 1}: SIGTERM {delay:.1f} s into fit -> exit {code} "
                  f"after {seconds:.2f} s (run closed, line printed after {closed} s)",
                  flush=True)
            if code != 143:
                print(output[-2000:])
            shutil.rmtree(folder, ignore_errors=True)
        print(f"{kind}: median {statistics.median(times):.2f} s, max {max(times):.2f} s over "
              f"{tries} tries", flush=True)


if __name__ == "__main__":
    main(*(int(a.split("=")[1]) for a in sys.argv[1:2]))
