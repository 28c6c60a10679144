"""`workers=N`: N local processes of the same command (`workers=1`) on one study, one GPU
each round-robin when GPUs are visible, every line prefixed `[worker i]`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import typing

from training.errors import RunKilled
from training.processes import run_workers
from training.study.tune.driver import StudyResult
from training.study.tune.mlflow_run import study_run
from training.study.tune.settings import TuneSettings
from training.study.tune.storage import (
    fail_dead_workers_trials,
    open_storage,
    open_study,
    redacted,
    storage_location,
)


def visible_gpus(environ: typing.Mapping[str, str] | None = None) -> list[str]:
    """GPU ids for CUDA_VISIBLE_DEVICES: the caller's own list if set, else nvidia-smi's."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        ids = [g.strip() for g in environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
        return [] if ids in ([], ["-1"]) else ids
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def worker_env(index: int, gpus: list[str], location: str,
               environ: typing.Mapping[str, str] | None = None) -> dict[str, str]:
    """Worker `index`'s environment: one GPU round-robin (none visible: unchanged) and the
    storage the launcher resolved, so every worker opens the same study. GPU memory grows on
    demand: TensorFlow would otherwise take a whole GPU per process, and with more workers
    than GPUs the second on a GPU would fail."""
    env = dict(os.environ if environ is None else environ)
    env["OPTUNA_STORAGE"] = location
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
        env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    return env


def worker_command(settings: TuneSettings) -> list[str]:
    """`python -m training.tune <the same words> workers=1 study=<name>`."""
    words = [w for w in settings.argv
             if w.partition("=")[0].strip().replace("-", "_") not in ("workers", "study")]
    return [sys.executable, "-m", "training.tune", *words, "workers=1",
            f"study={settings.study_name()}"]


class WorkersFailed(RuntimeError):
    """Some local workers exited with an error; the others finished their share."""


def launch(settings: TuneSettings) -> StudyResult:
    """Start `settings.workers` local workers on the study and wait for all of them.

    The study and its MLflow run are made here first (so workers find them, and bad settings
    exit 2 before any worker starts). A worker that fails does not stop the others; Ctrl-C /
    SIGTERM is forwarded to every worker, each of which closes its running trial.
    """
    location = storage_location()
    study, created = open_study(settings, open_storage(location))
    run_id = study_run(study, settings, created, location)
    fail_dead_workers_trials(study)
    gpus = visible_gpus()
    command = worker_command(settings)
    where = f"GPUs {', '.join(gpus)} round-robin" if gpus else "CPU"
    print(f"starting {settings.workers} workers on study {settings.study_name()!r} ({where}); "
          f"storage {redacted(location)}", flush=True)
    envs = [worker_env(index, gpus, location) for index in range(settings.workers)]
    codes = run_workers(command, envs, lambda procs: [proc.wait() for proc in procs])
    result = StudyResult.from_study(study, run_id, settings)
    if 130 in codes:
        raise KeyboardInterrupt
    if 143 in codes:
        raise RunKilled("SIGTERM")
    if any(codes):
        listed = ", ".join(f"worker {i}: exit {c}" for i, c in enumerate(codes) if c)
        if not result.done:
            raise WorkersFailed(f"{listed}; {result.describe(settings)}")
        print(f"warning: {listed}; the other workers completed the study", file=sys.stderr)
    return result
