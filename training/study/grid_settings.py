"""The grid's own settings, parsed without TensorFlow: `datasets=`, `workers=` (N, or `gpus`),
`resume=<parent run id>`, and each local worker's environment (its GPU, or its share of the
CPU cores)."""

from __future__ import annotations

import json
import os
import typing

from training.errors import ConfigError
from training.study.tune.workers import visible_gpus

WORKER_ENV = "LOSSLAB_GRID_WORKER"  # set in a local worker's environment: "<index>"
# Intra-op threads of every cell, whatever the worker count: the float sums of TensorFlow's CPU
# kernels are split by thread, and digits' focal test loss moved by 0.016 between 1 and 2
# threads. Inter-op threads (independent ops side by side) change no number: they take the
# worker's share of the cores.
CELL_INTRA_OP_THREADS = 1


def parse_datasets(raw: str) -> tuple[str, ...]:
    """"digits,idx:PATH" → ("digits", "idx:PATH"); each is checked when its runs are built."""
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if not names:
        raise ConfigError(f"datasets={raw!r} names no dataset; valid: comma-separated datasets "
                          "(e.g. datasets=digits,idx:../shared/datasets/mnist-t10k)")
    return names


def parse_workers(raw: str) -> str:
    """"2" → "2"; "gpus" → "gpus" (one worker per GPU, counted when the workers start)."""
    value = raw.strip().lower()
    if value == "gpus":
        return value
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"workers={raw!r} is not valid; valid: an integer >= 1, or gpus "
                          "(one worker per GPU)")
    return str(n)


def worker_count(workers: str, environ: typing.Mapping[str, str] | None = None) -> int:
    """How many local workers `workers` means; `gpus` with no GPU is a ConfigError."""
    if workers != "gpus":
        return int(workers)
    gpus = visible_gpus(environ)
    if not gpus:
        raise ConfigError("workers=gpus found no GPU (nvidia-smi lists none, or "
                          "CUDA_VISIBLE_DEVICES hides them all); valid here: workers=N")
    return len(gpus)


def cpu_share(index: int, workers: int, cores: int | None = None) -> int:
    """Threads for worker `index` of `workers`: the cores split as evenly as possible, at
    least one each (5 cores over 2 workers: 3 and 2)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // workers + (1 if index < cores % workers else 0))


def worker_envs(workers: str, environ: typing.Mapping[str, str] | None = None,
                cores: int | None = None) -> list[dict[str, str]]:
    """One environment per local worker. `gpus`: worker i sees GPU i only
    (CUDA_VISIBLE_DEVICES), its memory grown on demand. Worker i's inter-op thread pool sized
    to its share of the cores (TensorFlow reads TF_NUM_INTRAOP_THREADS /
    TF_NUM_INTEROP_THREADS at start-up; OMP_NUM_THREADS for oneDNN), so N workers do not
    each start a pool of every core and fight over them; the intra-op pool, which sets the
    numbers, is `CELL_INTRA_OP_THREADS` for every worker."""
    environ = dict(os.environ if environ is None else environ)
    n = worker_count(workers, environ)
    gpus = visible_gpus(environ) if workers == "gpus" else []
    envs = []
    for index in range(n):
        env = {**environ, WORKER_ENV: str(index)}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[index]
            env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        env["TF_NUM_INTRAOP_THREADS"] = env["OMP_NUM_THREADS"] = str(CELL_INTRA_OP_THREADS)
        env["TF_NUM_INTEROP_THREADS"] = str(cpu_share(index, n, cores))
        envs.append(env)
    return envs


def pin_threads(tf, workers: int = 1) -> str | None:
    """This process's TensorFlow thread pools as a grid worker's (before any op runs) → None,
    or a warning when TensorFlow had already started them otherwise (a Python session that
    trained before: its cells may differ from the workers' in the last digits)."""
    threading_ = tf.config.threading
    try:
        threading_.set_intra_op_parallelism_threads(CELL_INTRA_OP_THREADS)
        threading_.set_inter_op_parallelism_threads(cpu_share(0, workers))
    except RuntimeError:
        if threading_.get_intra_op_parallelism_threads() != CELL_INTRA_OP_THREADS:
            return (f"TensorFlow runs with {threading_.get_intra_op_parallelism_threads()} "
                    f"intra-op threads in this process (grid workers: "
                    f"{CELL_INTRA_OP_THREADS}); its cells may differ from a fresh "
                    "process's in the last digits")
    return None


def parent_argv(run_id: str, tag: str) -> list[str]:
    """The key=value words a compare parent was started with (its `tag`); ConfigError when
    the run is not a grid compare's parent."""
    from training.store import open_store  # noqa: PLC0415 (MLflow: only for resume=)

    client = open_store()
    try:
        run = client.get_run(run_id)
    except Exception:  # noqa: BLE001 (MLflow's "not found" varies by store)
        raise ConfigError(f"resume={run_id!r}: no such run in the store") from None
    raw = run.data.tags.get(tag)
    if raw is None:
        raise ConfigError(f"resume={run_id!r} is not the parent run of a compare made by this "
                          f"version (it has no {tag} tag); rerun the compare command itself")
    return list(json.loads(raw))
