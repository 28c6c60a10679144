"""Backbone throughput: `python -m benchmarks.backbones` (part of `make bench`).

`resnet20` (CIFAR ResNet, models/cifar_resnet.py) on 32×32 RGB images, one epoch at a time,
the same batches (one tf.data dataset of fixed batches, no shuffling) for both:

- bare: the same model (same initial weights) compiled with Keras's own SGD (Nesterov 0.9)
  and SparseCategoricalCrossentropy, `model.fit` with no callbacks;
- template: the optimiser of `training/run/optim.py` with the protocol's settings
  (`head_lr_mult=10`, `weight_decay=5e-4`: per-variable rates and decay in `update_step`),
  our loss, and the trainer's callbacks (validation, checkpoint, MLflow logging to a
  throwaway SQLite store).

The two alternate epoch by epoch so that load from other processes hits both alike; each
starts with one untimed epoch (tracing). Reported: medians of the training steps alone
(the `steps` lap; target >= 0.95× bare, as `small_cnn` reaches in benchmarks/train.py) and of
the whole epoch with its end-of-epoch work. The images are random: throughput does not depend
on their content.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from benchmarks.train import EpochClock, _median  # noqa: E402 (after the env defaults)

MODEL = "resnet20"
CLASSES = 10


def bench(n: int, batch: int, rounds: int) -> dict:
    import keras
    import mlflow
    import numpy as np
    import tensorflow as tf

    from training.config import Config
    from training.run import evaluate, optim, tracking
    from training.run.builders import build_loss, build_model, build_optimizer
    from training.run.callbacks import EpochEvaluation, MlflowLogger, StopOnNonFinite
    from training.run.checkpoint import Checkpoint

    rng = np.random.default_rng(0)
    x = rng.random((n, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, CLASSES, n).astype(np.int32)
    x_val, y_val = x[: max(n // 9, 16)], y[: max(n // 9, 16)]
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache().prefetch(2)
    steps = -(-n // batch)
    config = Config(model=MODEL, loss="ce", optimizer="sgd", learning_rate=0.05,
                    head_lr_mult=10.0, weight_decay=5e-4, batch_size=batch, epochs=100,
                    experiment="bench-backbones")
    keras.utils.set_random_seed(0)
    bare = build_model(config, x.shape[1:], CLASSES)
    init = bare.get_weights()
    bare.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    template = build_model(config, x.shape[1:], CLASSES)
    template.set_weights(init)
    loss = build_loss(config, y, CLASSES)
    template.compile(optimizer=build_optimizer(config, steps, template), loss=loss)
    clocks = {"bare": EpochClock(), "template": EpochClock()}
    history: dict[str, list[float]] = {}

    def validate():
        return evaluate.classification_scores(template, loss, x_val, y_val, CLASSES)[0]

    previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/bench.db"  # throwaway store
        with tracking.open_run(config) as run:
            clock = clocks["template"]
            callbacks = [clock.begin, *optim.callbacks(config), clock.lap("steps"),
                         StopOnNonFinite(), EpochEvaluation(validate, history, print_lines=False),
                         Checkpoint(Path(tmp) / run.info.run_id, history, config.seed),
                         MlflowLogger(history), clock.lap("epoch_end")]
            done = {"bare": 0, "template": 0}

            def fit(name):
                model = bare if name == "bare" else template
                extra = callbacks if name == "template" else [clocks["bare"].begin,
                                                              clocks["bare"].lap("steps")]
                model.fit(batches, epochs=done[name] + 1, initial_epoch=done[name],
                          callbacks=extra, shuffle=False, verbose=0)
                done[name] += 1

            for name in clocks:  # warm-up: tracing
                fit(name)
                clocks[name].clear()
            for _ in range(rounds):
                for name in clocks:
                    fit(name)
            mlflow.end_run()
    if previous_uri is None:
        os.environ.pop("MLFLOW_TRACKING_URI")
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous_uri
    return clocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backbones", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4, help="alternating epochs each")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.examples, args.rounds = 256, 1
    load_before, started = os.getloadavg(), time.perf_counter()
    clocks = bench(args.examples, args.batch_size, args.rounds)

    import keras
    import tensorflow as tf

    n = args.examples
    bare, tpl = clocks["bare"], clocks["template"]
    bare_s, bare_cpu = bare.median("steps"), bare.median("steps", True)
    rows = [("bare `model.fit`, Keras SGD, no callbacks", bare_s, bare_cpu, ""),
            ("template fit, training steps (per-variable rates + decay)", tpl.median("steps"),
             tpl.median("steps", True), ">= 0.95x"),
            ("template epoch incl. validation, checkpoint, MLflow",
             _median([a + b for a, b in zip(tpl.laps["steps"], tpl.laps["epoch_end"],
                                            strict=True)]),
             _median([a + b for a, b in zip(tpl.cpu["steps"], tpl.cpu["epoch_end"],
                                            strict=True)]), "")]
    print(f"\n## Backbone throughput: {MODEL} on {n} random 32×32 RGB images, batch "
          f"{args.batch_size}, {len(tpl.laps['steps'])} timed epochs each, medians\n")
    print("| measurement | s / epoch | examples / s | vs bare | CPU s / epoch | vs bare (CPU) "
          "| target |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, seconds, cpu, target in rows:
        print(f"| {name} | {seconds:.3f} | {n / seconds:,.0f} | {bare_s / seconds:.2f}x "
              f"| {cpu:.2f} | {bare_cpu / cpu:.2f}x | {target} |")
    devices = ", ".join(d.device_type for d in tf.config.list_physical_devices())
    load_after = os.getloadavg()
    print(f"\nmachine: {os.cpu_count()} CPUs ({devices}); load average (1 min) "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; TensorFlow "
          f"{tf.__version__}, Keras {keras.__version__}; total "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
