"""Input-pipeline benchmark: `python -m benchmarks.data` (part of `make bench`).

Three ratios, each between numbers measured in this run on the same files:

1. pipeline: decoded, resized, crop+flipped batches per second from a folder of JPEGs
   (`folder:` with `cache=none`, so every epoch decodes every file) against Keras's
   `image_dataset_from_directory` with the same resize and the same crop+flip mapped after
   it. Goal >= 1.0x. The two alternate, `--repeats` times; medians.
2. streaming costs no training speed: one epoch of `small_cnn` on MNIST t10k written as a
   PNG class folder (`folder:`, `cache=memory`) against the same images from `idx:`. Goal
   <= 1.10x the time. Alternating, medians.
3. memory does not grow with the dataset: peak RSS of one process that reads one epoch of
   `--small` and then of `--large` small JPEGs through the `cache=disk` pipeline, each in a
   fresh process. Goal: large <= 1.2x small.

Files are written once under `--workdir` (default: a temporary folder) from the real MNIST
t10k digits, tinted to RGB; writing 100k JPEGs takes about a minute on 2 cores.
`--quick` shrinks everything to a smoke run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
MNIST = REPO_ROOT.parent / "shared" / "datasets" / "mnist-t10k"


def _digits():
    from training.data.idx import find_idx_files, read_pair

    return read_pair(*find_idx_files(MNIST)["test"])


def write_jpegs(root: Path, count: int, side: int) -> Path:
    """`count` RGB JPEGs of side `side` in 10 class folders (MNIST digits, tinted), once."""
    import numpy as np
    from PIL import Image

    done = root / f".done-{count}-{side}"
    if done.exists():
        return root
    images, labels = _digits()
    tints = np.random.default_rng(0).uniform(0.3, 1.0, size=(count, 3))
    for i in range(count):
        digit = images[i % len(images)]
        rgb = (digit[..., None] * tints[i]).astype(np.uint8)
        folder = root / str(labels[i % len(labels)])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).resize((side, side)).save(folder / f"{i:06d}.jpg", quality=90)
    done.touch()
    return root


def _crop_flip(size):
    import tensorflow as tf

    def one(image):
        padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
        return tf.image.random_flip_left_right(tf.image.random_crop(padded, [size, size, 3]))

    return one


def pipeline_rates(folder: Path, size: int, batch: int, repeats: int) -> dict:
    """batches/s of ours and of Keras's over one pass of the folder, alternating."""
    import keras
    import numpy as np
    import tensorflow as tf

    from training.data import classification_dataset, load_splits, prepare_splits

    splits = load_splits(f"folder:{folder}", "classification", seed=0, val_fraction=0.1,
                         image_size=size)
    splits = prepare_splits(splits, policy="crop_flip", image_size=size, cache="none",
                            cache_budget=0.25, cache_folder=None, skip_bad_images=False)
    n = len(splits.y_train)
    steps = int(np.ceil(n / batch))
    ours_ds = classification_dataset(splits.x_train, splits.y_train, batch, seed=0)

    keras_ds = keras.utils.image_dataset_from_directory(
        folder, image_size=(size, size), batch_size=None, shuffle=True, seed=0,
        interpolation="bilinear", verbose=False)
    keras_ds = keras_ds.map(lambda x, y: (_crop_flip(size)(x / 255.0), y),
                            num_parallel_calls=tf.data.AUTOTUNE)
    keras_ds = keras_ds.batch(batch).prefetch(tf.data.AUTOTUNE).repeat()

    def timed(iterator, count):
        start = time.perf_counter()
        for _ in range(count):
            next(iterator)
        return count / (time.perf_counter() - start)

    rates = {"ours": [], "keras": []}
    iterators = {"ours": iter(ours_ds), "keras": iter(keras_ds)}
    for iterator in iterators.values():
        next(iterator)  # build and trace once, outside the clock
    for _ in range(repeats):
        for name, iterator in iterators.items():
            rates[name].append(timed(iterator, steps))
    return {k: statistics.median(v) for k, v in rates.items()} | {"images": n, "steps": steps}


def epoch_times(png: Path, idx: Path, repeats: int, epochs: int = 2) -> dict:
    """Seconds per training epoch (after the first) of folder: PNGs vs idx:, alternating."""
    import tempfile as tf_tmp

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tf_tmp.mkdtemp()}/bench.db"
    import keras

    from training.config import Config
    from training.train import train

    class EpochTimer(keras.callbacks.Callback):
        """Seconds of each epoch: its steps and the epoch-end work (val, checkpoint, MLflow)."""

        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    times = {"folder": [], "idx": []}
    for _ in range(repeats):
        for name, dataset in (("folder", f"folder:{png}"), ("idx", f"idx:{idx}")):
            config = Config(dataset=dataset, epochs=epochs, cache="memory",
                            checkpoint_dir=tf_tmp.mkdtemp())
            timer = EpochTimer()
            train(config, callbacks=[timer])
            times[name] += timer.seconds[1:]  # the first epoch traces
    return {k: statistics.median(v) for k, v in times.items()}


def peak_rss_child(folder: Path, size: int, cache_dir: Path) -> float:
    """Peak RSS (MB) of a fresh process reading one epoch of `folder` through the disk cache."""
    code = (
        "import resource\n"
        "from training.data import classification_dataset, load_splits, prepare_splits\n"
        f"s = load_splits('folder:{folder}', 'classification', seed=0, val_fraction=0.1,"
        f" image_size={size})\n"
        f"s = prepare_splits(s, policy='crop_flip', image_size={size}, cache='disk',"
        f" cache_budget=0.25, cache_folder=__import__('pathlib').Path('{cache_dir}'),"
        " skip_bad_images=False)\n"
        "ds = classification_dataset(s.x_train, s.y_train, 128, seed=0)\n"
        "steps = -(-len(s.y_train) // 128)\n"
        "for _ in ds.take(steps): pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000, help="JPEGs for the pipeline")
    parser.add_argument("--side", type=int, default=96)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="smoke sizes (seconds)")
    parser.add_argument("--part", choices=("all", "pipeline", "train", "rss"), default="all",
                        help="one measurement only (each runs in a fresh process under all)")
    args = parser.parse_args(argv)
    if args.part == "all":
        # Each part in a fresh process: tf.data and autograph state of one part (its traced
        # functions, thread pools) must not leak into the next one's timings.
        for part in ("pipeline", "train", "rss"):
            command = [sys.executable, "-m", "benchmarks.data", "--part", part,
                       "--images", str(args.images), "--side", str(args.side),
                       "--small", str(args.small), "--large", str(args.large),
                       "--repeats", str(args.repeats)]
            if args.workdir:
                command += ["--workdir", str(args.workdir)]
            if args.quick:
                command.append("--quick")
            subprocess.run(command, cwd=REPO_ROOT, check=True)
        return
    if args.quick:
        args.images, args.side, args.small, args.large, args.repeats = 256, 32, 200, 400, 1
    work = args.workdir or Path(tempfile.mkdtemp(prefix="losslab-bench-data-"))

    if args.part == "pipeline":
        _pipeline_part(args, work)
    elif args.part == "train":
        _train_part(args, work)
    else:
        _rss_part(args, work)


def _pipeline_part(args, work: Path) -> None:
    folder = write_jpegs(work / f"jpeg{args.images}", args.images, args.side)
    rates = pipeline_rates(folder, args.side, 128, args.repeats)
    print(f"\nInput pipeline, {rates['images']:,} JPEGs at {args.side}x{args.side}, crop+flip, "
          f"batch 128 (median of {args.repeats}):")
    print("| pipeline | batches/s | ratio |\n|---|---|---|")
    print(f"| losslab folder: (cache=none) | {rates['ours']:.1f} | "
          f"{rates['ours'] / rates['keras']:.2f} |")
    print(f"| keras image_dataset_from_directory | {rates['keras']:.1f} | 1.00 |", flush=True)


def _train_part(args, work: Path) -> None:
    images, labels = _digits()
    count = 400 if args.quick else len(labels)
    png, idx = work / "png", work / "idx"
    if not (png / ".done").exists():
        sys.path.insert(0, str(REPO_ROOT / "tests" / "training" / "data"))
        from written import class_major, write_idx, write_png_folder

        order = class_major(labels[:count])
        write_png_folder(png, images[:count][order], labels[:count][order])
        write_idx(idx, images[:count][order], labels[:count][order])
        (png / ".done").touch()
    times = epoch_times(png, idx, args.repeats)
    print(f"\nOne training epoch after the first (small_cnn, {count:,} MNIST t10k images, "
          f"median of {args.repeats}):")
    print("| source | seconds | ratio |\n|---|---|---|")
    print(f"| folder: PNG, cache=memory | {times['folder']:.1f} | "
          f"{times['folder'] / times['idx']:.2f} |")
    print(f"| idx: | {times['idx']:.1f} | 1.00 |", flush=True)


def _rss_part(args, work: Path) -> None:
    rss = {}
    for count in (args.small, args.large):
        files = write_jpegs(work / f"small{count}", count, 28)
        rss[count] = peak_rss_child(files, 28, work / f"cache{count}")
    print("\nPeak RSS of one epoch through cache=disk (28x28 JPEGs, fresh process each):")
    print("| images | peak RSS MB | ratio |\n|---|---|---|")
    for count, mb in rss.items():
        print(f"| {count:,} | {mb:.0f} | {mb / rss[args.small]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
