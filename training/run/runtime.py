"""Process-wide runtime settings of a run: devices, strategy, seeds, determinism, precision.

`setup(config)` must run first in a process, before the model is built and before anything
executes a TensorFlow op: splitting the CPU into logical devices and configuring the
collective ops of `MultiWorkerMirroredStrategy` are only possible while TensorFlow has not
initialised its devices, and the precision policy and the strategy apply to layers created
afterwards. Importing keras, tensorflow or mlflow does not initialise the devices; running
any op, `tf.config.list_logical_devices()` or a previous `train()` in the same process does.

Strategies (`strategy=`):
    none          the default strategy: one device (the first GPU if any, else the CPU).
    mirrored      `tf.distribute.MirroredStrategy`, synchronous data parallelism over local
                  devices: all GPUs, or the first `devices=N`; on a CPU-only machine
                  `devices=N` splits the CPU into N logical devices (for tests; it adds no
                  compute). Each step every replica gets a contiguous slice of
                  batch_size / replicas rows; Keras scales each replica's loss by
                  1 / replicas and sums the gradients, i.e. the global-batch mean.
                  BatchNorm uses global-batch statistics (`sync_batch_norm`), so training
                  equals one device at the same global batch up to round-off (dropout
                  masks aside: each replica draws its own).
    multi_worker  `tf.distribute.MultiWorkerMirroredStrategy`; the cluster and this
                  process's role come from the `TF_CONFIG` environment variable, which
                  `python -m training.workers` sets for N local workers. Worker 0 (or the
                  "chief" task, if the cluster has one) is the chief: only it tracks the run.

Metric losses under distribution see each replica's slice, not the global batch: mining
(hard, semi-hard, all) picks positives and negatives within the slice, like a per-device
P×K batch of (P / replicas) × K; `check_batch_split` makes every slice hold whole K-groups.

Precision (`precision=`) is the global Keras policy: mixed_float16 / mixed_bfloat16 compute
in half precision with float32 weights; the models' last layer and the losses stay float32,
and Keras wraps the optimiser in a LossScaleOptimizer under mixed_float16.

The same code runs unchanged on a GPU (install the `tensorflow[and-cuda]` extra).
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from training.config import Config, ConfigError


class DeviceSetupError(RuntimeError):
    """Devices or collectives requested after TensorFlow initialised them in this process."""


def setup(config: Config) -> tf.distribute.Strategy:
    """Devices and strategy first (see module doc), then seed, determinism and precision."""
    strategy = STRATEGIES[config.strategy](config)
    keras.utils.set_random_seed(config.seed)  # same seed on every worker: same shuffles
    # Same seed → same metrics. Costs little for this model size on CPU; some GPU kernels get
    # slower. Raises at run time if an op has no deterministic implementation.
    tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(config.precision)
    check_batch_split(config, strategy.num_replicas_in_sync)
    return strategy


# --- strategies ------------------------------------------------------------------------------


def _default(config: Config) -> tf.distribute.Strategy:
    _reject_devices(config)
    return tf.distribute.get_strategy()  # the default (no-op) strategy


def _mirrored(config: Config) -> tf.distribute.Strategy:
    gpus = tf.config.list_physical_devices("GPU")  # does not initialise the devices
    if gpus:
        if config.devices > len(gpus):
            raise ConfigError(
                f"devices={config.devices} but this machine has {len(gpus)} GPU(s); "
                f"valid: 0 (all GPUs) to {len(gpus)}"
            )
        names = [f"/gpu:{i}" for i in range(config.devices or len(gpus))]
        return tf.distribute.MirroredStrategy(names)  # NCCL all-reduce between GPUs
    # Logical CPUs share memory: sum on one device (a copy and an add) instead of collective
    # ops, which, launched from concurrently traced replicas, could pair up out of order
    # ("Shape mismatch in the collective instance", seen here with synchronized BatchNorm).
    return tf.distribute.MirroredStrategy(
        split_cpu(max(config.devices, 1)), cross_device_ops=tf.distribute.ReductionToOneDevice()
    )


def _multi_worker(config: Config) -> tf.distribute.Strategy:
    _reject_devices(config)
    cluster_and_task()  # validates TF_CONFIG
    try:
        # RING all-reduce on CPU, NCCL on GPUs (AUTO). Must precede any TF op in the process.
        return _MultiWorkerMirrored()
    except RuntimeError as exc:
        raise DeviceSetupError(
            "strategy=multi_worker must be set up before TensorFlow runs any op in this "
            f"process ({exc}); start each worker as a fresh process "
            "(python -m training.workers workers=N key=value ..., or make workers WORKERS=N)"
        ) from None


class _MultiWorkerMirrored(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy whose `reduce` accepts what Keras 3's `fit` passes it.

    Keras 3.15 `fit` under several workers (keras-team/keras#20585, open) calls
    `strategy.reduce("MEAN", (x, y), axis=None)` on a whole batch structure before the first
    step, and `strategy.reduce("MEAN", scalar, axis=0)` on every step's logs; the stock
    strategy rejects both (it takes one value, and axis 0 of a scalar does not exist).
    Here each leaf is reduced on its own, scalars across replicas only. Same results
    otherwise; remove once Keras handles it.
    """

    def reduce(self, reduce_op, value, axis):
        def one(leaf):
            rank = self.experimental_local_results(leaf)[0].shape.rank
            return super(_MultiWorkerMirrored, self).reduce(
                reduce_op, leaf, None if rank == 0 else axis
            )

        return tf.nest.map_structure(one, value)


STRATEGIES = {"none": _default, "mirrored": _mirrored, "multi_worker": _multi_worker}


def _reject_devices(config: Config) -> None:
    if config.devices:
        raise ConfigError(
            f"devices={config.devices} only applies to strategy=mirrored (got "
            f"strategy={config.strategy!r}); use devices=0, or strategy=mirrored"
        )


def split_cpu(n: int) -> list[str]:
    """Split the first CPU into `n` logical devices; → their names ['/device:CPU:0', ...].

    Only possible before TensorFlow initialises its devices. A process that already has
    exactly `n` logical CPUs (a second `train()` in the same process) is accepted as is.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != n:
            raise DeviceSetupError(
                f"devices={n} needs the CPU split into {n} logical devices before TensorFlow "
                f"initialises its devices, but this process already runs with {have}; "
                "start a fresh process (python -m training.train strategy=mirrored "
                f"devices={n} ...) or use devices={have}"
            ) from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def check_batch_split(config: Config, replicas: int) -> None:
    """Every replica must get an equal slice; for P×K batches, whole K-groups.

    tf.distribute cuts each global batch into `replicas` contiguous slices of
    batch_size / replicas rows. The P×K sampler lays a batch out class by class, K rows
    each, so a slice holds whole K-groups (every anchor keeps its K − 1 positives) exactly
    when P is a multiple of the number of replicas. Metric losses then mine within each
    replica's slice (negatives from the other slices are not seen), which is what a
    per-device batch of (P / replicas) × K means; the mined statistics are averaged.
    """
    if replicas <= 1:
        return
    if config.task == "retrieval" and config.classes_per_batch % replicas:
        k = config.samples_per_class
        raise ConfigError(
            f"batch_size={config.batch_size} is P×K = {config.classes_per_batch}×{k}; each of "
            f"the {replicas} replicas needs whole K-groups, so P must be a multiple of "
            f"{replicas}; valid: batch_size a multiple of {replicas * k}"
        )
    if config.batch_size % replicas:
        raise ConfigError(
            f"batch_size={config.batch_size} does not split evenly over {replicas} replicas; "
            f"valid: a multiple of {replicas}"
        )


# --- what the trainer adapts to the strategy --------------------------------------------------


def sync_batch_norm(model: keras.Model, strategy: tf.distribute.Strategy) -> keras.Model:
    """With several replicas, BatchNormalization normalises with global-batch statistics.

    Otherwise each replica normalises its own slice and training differs from one device
    at the same global batch. Cost: two all-reduces of (channels,) per layer and step.
    The flag is saved with the model; such a model loads on the TensorFlow backend only.
    """
    if strategy.num_replicas_in_sync > 1:
        for layer in _all_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
    return model


def _all_layers(layer):
    for sub in getattr(layer, "layers", []):
        yield sub
        yield from _all_layers(sub)


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shard in-memory pipelines by element across workers (each worker keeps its slice of
    every global batch); the default AUTO policy first tries, and warns about, file
    sharding, which does not apply to arrays or the P×K generator."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def jit_compile(config: Config) -> bool | str:
    """`auto` is Keras's own choice: XLA off on CPU-only TensorFlow (measured slower for the
    small CNN here, see benchmarks/train.py) and under tf.distribute, on for a single GPU."""
    return {"auto": "auto", "true": True, "false": False}[config.jit_compile]


# --- workers: the cluster and who tracks it ---------------------------------------------


def cluster_and_task() -> tuple[dict, dict]:
    """(cluster, task) from `TF_CONFIG`; ConfigError if missing or malformed."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError(
            "strategy=multi_worker reads the cluster from TF_CONFIG, which is not set; start "
            "local workers with: python -m training.workers workers=2 key=value ... (make workers)"
        )
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        cluster[task["type"]][int(task["index"])]  # noqa: B018 (existence check)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ConfigError(
            f"TF_CONFIG={raw!r} is not valid ({type(exc).__name__}: {exc}); expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}'
        ) from None
    return cluster, task


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for single-process runs and for the chief of a multi-worker cluster: the task
    typed "chief", or worker 0 when the cluster has no chief (TensorFlow's convention)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().jobs
