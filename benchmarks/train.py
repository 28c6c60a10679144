"""Training throughput benchmark: `python -m benchmarks.train` (part of `make bench`).

One process, one dataset (`idx:../shared/datasets/mnist-t10k`, relative to the repo root), one
model (`small_cnn`), one batch size; every ratio is between numbers measured in the same run:

- template vs bare: examples/s of the template's fit (its tf.data pipeline, its callbacks,
  MLflow logging to a throwaway SQLite store) vs `model.fit` on the same NumPy arrays with
  no callbacks, for an identical model (same initial weights, same compile). The two
  alternate epoch by epoch-pair so that load from other processes hits both alike; the
  first epoch of each (tracing) is dropped. Target: >= 0.95.
- input pipeline alone: iterating the template's training dataset without a model.
  Target: >= 3x the training throughput (the model, not the data, is the bottleneck).
- epoch-end share: time of the per-epoch validation + checkpoint + MLflow logging over the
  whole epoch. Target: <= 10 %.
- jit_compile: the bare fit with XLA on (`jit_compile=True`) vs off.
- retrieval evaluation (`training.metrics.retrieval_metrics`) vs number of queries on
  synthetic 64-d embeddings (10 classes, so R ≈ N/10 as for MNIST): time and peak NumPy
  memory (tracemalloc). Time grows as N², memory as N (one chunk of rows at a time). The
  default sweep stops at 16k; `--queries 1000,4000,16000,70000` adds full MNIST size,
  about 2 CPU-minutes more (500 s wall on 2 cores at load average 8).

To keep the default run to a few minutes on 2 CPU cores, training uses the first
`--train-examples` (default 2048) training images and a validation subset of the same
relative size as in the real split (val/train = 1/9), so the epoch-end share is the one a
full run has (the full-split share is also extrapolated). Options: `--help`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASET = "idx:" + str((REPO_ROOT / ".." / "shared" / "datasets" / "mnist-t10k").resolve())
QUERIES = [1_000, 4_000, 16_000]  # add 70000 with --queries: minutes on 2 cores (see below)


class EpochClock:
    """Callbacks that time an epoch in laps: `begin` goes first in the callback list, then
    `lap(name)` after each stretch of work; `laps[name]` holds that stretch's seconds per
    epoch and `cpu[name]` this process's CPU seconds (all its threads), which other
    processes' load disturbs far less than wall time. `lap("steps")` right after `begin`
    times the training steps alone: Keras calls on_epoch_end after the epoch's last step."""

    def __init__(self):
        import keras

        self.laps: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        clock = self

        class Begin(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                clock._last, clock._last_cpu = time.perf_counter(), time.process_time()

        class Lap(keras.callbacks.Callback):
            def __init__(self, name):
                super().__init__()
                self.name = name

            def on_epoch_end(self, epoch, logs=None):
                now, cpu = time.perf_counter(), time.process_time()
                clock.laps.setdefault(self.name, []).append(now - clock._last)
                clock.cpu.setdefault(self.name, []).append(cpu - clock._last_cpu)
                clock._last, clock._last_cpu = now, cpu

        self.begin, self._lap = Begin(), Lap

    def lap(self, name: str):
        return self._lap(name)

    def median(self, name: str, cpu: bool = False) -> float:
        return _median((self.cpu if cpu else self.laps).get(name, []))

    def clear(self) -> None:
        self.laps.clear()
        self.cpu.clear()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _build(config, splits, steps, init, jit):
    """The template's model, loss and optimiser, compiled; `init` = initial weights."""
    from training.run.builders import build_loss, build_model, build_optimizer

    loss = build_loss(config, splits.y_train, splits.num_classes)
    model = build_model(config, splits.x_train.shape[1:], splits.num_classes)
    if init is not None:
        model.set_weights(init)
    model.compile(optimizer=build_optimizer(config, steps), loss=loss, jit_compile=jit)
    return model, loss


def bench_training(config, splits, epochs: int, rounds: int) -> dict:
    """Three identical models (same initial weights), fitted in turn `epochs` at a time,
    `rounds` times, after one warm-up epoch each (tracing):

    - "bare": `model.fit(x, y)` on the NumPy arrays, no callbacks;
    - "bare_pipeline": `model.fit` on the template's tf.data pipeline, no callbacks;
    - "template": the pipeline and the trainer's callbacks, logging to MLflow.
    """
    import mlflow

    from training.run import evaluate, runtime, tracking
    from training.run.builders import build_train_data
    from training.run.callbacks import EpochEvaluation, MlflowLogger, StopOnNonFinite
    from training.run.checkpoint import Checkpoint

    x, y = splits.x_train, splits.y_train
    train_data, steps = build_train_data(config, x, y)
    train_data = runtime.shard_by_data(train_data)
    jit = runtime.jit_compile(config)
    bare, loss = _build(config, splits, steps, None, jit)
    init = bare.get_weights()
    piped, _ = _build(config, splits, steps, init, jit)
    template, _ = _build(config, splits, steps, init, jit)
    clocks = {name: EpochClock() for name in ("bare", "bare_pipeline", "template")}
    history: dict[str, list[float]] = {}

    def validate():
        return evaluate.classification_scores(
            template, loss, splits.x_val, splits.y_val, splits.num_classes
        )[0]

    previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/bench.db"  # throwaway store
        with tracking.open_run(config.replace(experiment="bench-train")) as run:
            clock = clocks["template"]
            callbacks = [
                clock.begin, clock.lap("steps"),
                StopOnNonFinite(), EpochEvaluation(validate, history), clock.lap("validation"),
                Checkpoint(Path(tmp) / run.info.run_id, history, config.seed),
                clock.lap("checkpoint"),
                MlflowLogger(history), clock.lap("mlflow"),
            ]
            done = {"bare_pipeline": 0, "template": 0}

            def fit(name, n):
                clock = clocks[name]
                if name == "bare":
                    bare.fit(x, y, batch_size=config.batch_size, epochs=n, shuffle=True,
                             verbose=0, callbacks=[clock.begin, clock.lap("steps")])
                    return
                model = piped if name == "bare_pipeline" else template
                extra = callbacks if name == "template" else [clock.begin, clock.lap("steps")]
                start = done[name]  # the pipeline is infinite: epoch e = f(seed, e)
                model.fit(train_data, epochs=start + n, initial_epoch=start,
                          steps_per_epoch=steps, callbacks=extra, shuffle=False, verbose=0)
                done[name] += n

            for name in clocks:  # warm-up: tracing
                fit(name, 1)
                clocks[name].clear()
            for _ in range(rounds):
                for name in clocks:
                    fit(name, epochs)
            mlflow.end_run()
    if previous_uri is None:
        os.environ.pop("MLFLOW_TRACKING_URI")
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous_uri
    return {"n": len(y), "steps": steps, "clocks": clocks, "model": bare,
            "train_data": train_data}


def bench_pipeline(train_data, steps: int, repeats: int = 3) -> float:
    """Seconds to iterate one epoch of the training dataset (no model), median."""
    times = []
    iterator = iter(train_data)
    next(iterator)  # start the pipeline (threads, first prefetch)
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            next(iterator)
        times.append(time.perf_counter() - start)
    return _median(times)


def bench_jit(config, splits, steps: int, epochs: int) -> tuple[float, float, float]:
    """Bare fit with XLA on: medians after warm-up of (wall s, CPU s) per epoch, and the
    warm-up epoch's wall seconds (XLA compilation included)."""
    model, _ = _build(config, splits, steps, None, True)
    clock = EpochClock()
    model.fit(splits.x_train, splits.y_train, batch_size=config.batch_size, epochs=1 + epochs,
              verbose=0, callbacks=[clock.begin, clock.lap("steps")])
    laps = clock.laps["steps"]
    return _median(laps[1:]), _median(clock.cpu["steps"][1:]), laps[0]


def bench_retrieval(sizes: list[int], dim: int = 64, classes: int = 10) -> list[tuple]:
    """[(queries, seconds, peak MB)] of retrieval_metrics on random clustered embeddings."""
    import numpy as np

    from training.metrics import retrieval_metrics

    rows = []
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    # Outside the measurement: the first call in a process loads the compiled kernels.
    retrieval_metrics(rng.normal(size=(256, dim)).astype(np.float32), np.arange(256) % 8)
    for n in sizes:
        labels = rng.integers(0, classes, n)
        emb = centres[labels] + rng.normal(scale=1.5, size=(n, dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        tracemalloc.start()
        start = time.perf_counter()
        retrieval_metrics(emb, labels)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append((n, seconds, peak / 2**20))
    return rows


def _subset(splits, train_examples: int):
    """First `train_examples` training images and val in the real split's val/train ratio."""
    import dataclasses

    n_train = min(train_examples, len(splits.y_train))
    n_val = max(1, round(n_train * len(splits.y_val) / len(splits.y_train)))
    return dataclasses.replace(
        splits,
        x_train=splits.x_train[:n_train], y_train=splits.y_train[:n_train],
        x_val=splits.x_val[:n_val], y_val=splits.y_val[:n_val],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-examples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/template rounds")
    parser.add_argument("--queries", default=",".join(map(str, QUERIES)))
    parser.add_argument("--no-jit", action="store_true", help="skip the XLA measurement")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_examples, args.epochs, args.rounds, args.queries = 512, 1, 2, "1000,4000"
    queries = [int(q) for q in args.queries.split(",") if q]
    load_before = os.getloadavg()
    started = time.perf_counter()

    import keras
    import tensorflow as tf

    from training.config import Config
    from training.data import load_splits
    from training.run import runtime

    config = Config(dataset=DATASET, loss="ce", batch_size=args.batch_size, epochs=100,
                    checkpoint_dir=tempfile.gettempdir())
    runtime.setup(config)
    full = load_splits(DATASET, "classification", seed=0)
    splits = _subset(full, args.train_examples)
    t = bench_training(config, splits, args.epochs, args.rounds)
    n, steps, clocks = t["n"], t["steps"], t["clocks"]
    bare_s, bare_cpu = clocks["bare"].median("steps"), clocks["bare"].median("steps", True)
    piped = clocks["bare_pipeline"]
    piped_s, piped_cpu = piped.median("steps"), piped.median("steps", True)
    tpl = clocks["template"]
    fit_s, fit_cpu = tpl.median("steps"), tpl.median("steps", True)
    epoch_cpu = _median([sum(laps) for laps in zip(*tpl.cpu.values(), strict=True)])
    end_parts = {k: tpl.median(k) for k in ("validation", "checkpoint", "mlflow")}
    epoch_s = _median([sum(laps) for laps in zip(*tpl.laps.values(), strict=True)])
    pipe_s = bench_pipeline(t["train_data"], steps)
    jit = None if args.no_jit else bench_jit(config, splits, steps, args.epochs)
    retrieval = bench_retrieval(queries)
    load_after = os.getloadavg()

    devices = ", ".join(d.device_type for d in tf.config.list_physical_devices())
    timed = len(tpl.laps["steps"])
    print(f"\n## Training throughput: small_cnn on {Path(DATASET[4:]).name}, {n} train / "
          f"{len(splits.y_val)} val images, batch {args.batch_size}, {timed} timed epochs "
          "each, medians\n")
    print("| measurement | s / epoch | examples / s | vs bare | CPU s / epoch | vs bare "
          "(CPU) | target |")
    print("|---|---:|---:|---:|---:|---:|---|")
    rows = [
        ("bare `model.fit` on NumPy arrays", bare_s, bare_cpu, ""),
        ("bare `model.fit` on the template's tf.data pipeline", piped_s, piped_cpu, ""),
        ("template fit, training steps (pipeline + callbacks)", fit_s, fit_cpu, ">= 0.95x"),
        ("template epoch incl. validation, checkpoint, MLflow", epoch_s, epoch_cpu, ""),
    ]
    if jit is not None:
        rows.append(("bare fit, jit_compile=True (XLA)", jit[0], jit[1],
                     f"first epoch incl. XLA compile {jit[2]:.1f} s"))
    for name, seconds, cpu, target in rows:
        print(f"| {name} | {seconds:.3f} | {n / seconds:,.0f} | {bare_s / seconds:.2f}x "
              f"| {cpu:.2f} | {bare_cpu / cpu:.2f}x | {target} |")
    print(f"| input pipeline alone (no model) | {pipe_s:.3f} | {n / pipe_s:,.0f} | "
          f"{fit_s / pipe_s:.0f}x faster than template training | | | >= 3x |")

    end_s = sum(end_parts.values())
    print("\nEpoch-end work: " + ", ".join(f"{k} {v:.3f} s" for k, v in end_parts.items())
          + f" = {100 * end_s / epoch_s:.1f} % of the epoch here (target <= 10 %).")
    # The full split: steps and validation scale with their image counts, checkpoint and
    # MLflow logging are per epoch.
    n_full, v_full = len(full.y_train), len(full.y_val)
    steps_full = fit_s * n_full / n
    val_full = end_parts["validation"] * v_full / len(splits.y_val)
    end_full = val_full + end_parts["checkpoint"] + end_parts["mlflow"]
    print(f"At the default full split ({n_full} train / {v_full} val), from these per-image "
          f"and per-epoch costs: {100 * end_full / (steps_full + end_full):.1f} %.")

    print("\n## Retrieval evaluation (retrieval_metrics, 64-d, 10 classes, chunk 1024)\n")
    print("| queries | seconds | peak NumPy memory (MB) | N×N float32 would be (MB) |")
    print("|---:|---:|---:|---:|")
    for q, seconds, mb in retrieval:
        print(f"| {q:,} | {seconds:.2f} | {mb:,.0f} | {4 * q * q / 2**20:,.0f} |")
    print(f"\nmachine: {os.cpu_count()} CPUs ({devices}); load average (1 min) "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}; "
          f"jit_compile=auto resolved to {t['model'].jit_compile}; "
          f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
