"""Decode every image once before training: fill the cache, and find the bad files.

``prepare(images, ...)`` runs one parallel tf.data pass over a split's files (or its TFDS
records), decoding and resizing each image to the stored side:

- ``cache=memory``: into a uint8 array in RAM (``ArrayImages``);
- ``cache=disk``: into one file of uint8 records under ``<checkpoint_dir>/cache/``
  (``DiskImages``), written atomically and reused by every later run on the same files,
  size and channels (every seed and loss of a compare);
- ``cache=none``: nothing kept: the pass only verifies, and training decodes the files
  again each epoch (``FileImages``);
- ``cache=auto``: memory when all splits fit in ``cache_budget`` of RAM, else disk.

This pass is where a truncated JPEG or a text file named ``.jpg`` is found, before any run
exists: each element carries its position, failures are dropped by ``ignore_errors``, and the
missing positions name the files. Cost: one decode of each image, in parallel on all cores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from training.data import transforms
from training.data.images import ArrayImages, DiskImages, FileImages, Images, TfdsImages
from training.errors import DataError

PASS_BATCH = 256
SHOWN_BAD = 20  # bad paths logged (and the first named in the error)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A split after the pass: its images, and which positions were unreadable."""

    images: Images
    bad: np.ndarray  # int64 positions (into the input collection) that failed to decode
    bad_names: tuple[str, ...]  # their file names (or TFDS record positions)


def ram_bytes() -> int:
    """Physical memory of this machine (the budget's 100 %)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def decoded_bytes(images: Images) -> int:
    return len(images) * images.stored * images.stored * images.channels


def choose(cache: str, collections: list[Images], budget: float) -> str:
    """`auto` → memory or disk from the decoded size of all splits; else `cache` itself."""
    if cache != "auto":
        return cache
    total = sum(decoded_bytes(c) for c in collections if not isinstance(c, ArrayImages))
    return "memory" if total <= budget * ram_bytes() else "disk"


def _names(images: Images, positions: np.ndarray) -> tuple[str, ...]:
    if isinstance(images, FileImages):
        return tuple(str(images.paths[p]) for p in positions)
    if isinstance(images, TfdsImages):
        return tuple(f"{images.name}[{images.split}] record {images.positions[p]}"
                     for p in positions)
    return tuple(str(p) for p in positions)


def _decode_pass(images: Images) -> tf.data.Dataset:
    """(position, uint8 (stored, stored, C)) for every image that decodes, in order."""
    side, channels = images.stored, images.channels
    if isinstance(images, FileImages):
        ds = tf.data.Dataset.from_tensor_slices(images.paths.astype(str)).enumerate()
        ds = ds.map(lambda i, p: (i, transforms.decode_bytes(tf.io.read_file(p), side, channels)),
                    num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = _tfds_pass(images, side, channels)
    return ds.ignore_errors().batch(PASS_BATCH).prefetch(2)


def _tfds_pass(images: TfdsImages, side: int, channels: int) -> tf.data.Dataset:
    """The TFDS split streamed once with its images still encoded (SkipDecoding), filtered to
    this collection's positions, decoded in parallel. Positions come out ascending."""
    import tensorflow_datasets as tfds

    try:
        ds = tfds.load(images.name, split=images.split, data_dir=images.data_dir,
                       shuffle_files=False,
                       decoders={images.image_key: tfds.decode.SkipDecoding()})
    except Exception as err:  # TFDS raises many types for "could not get it"
        raise DataError(f"could not read TFDS dataset {images.name!r} split "
                        f"{images.split!r}: {type(err).__name__}: {err}") from err
    size = int(images.positions.max()) + 1 if len(images) else 0
    wanted = np.zeros(size, bool)
    wanted[images.positions] = True
    mask = tf.constant(wanted)
    ds = ds.enumerate().take(size)
    ds = ds.filter(lambda i, ex: tf.gather(mask, i))
    key = images.image_key
    return ds.map(lambda i, ex: (i, transforms.decode_bytes(ex[key], side, channels)),
                  num_parallel_calls=tf.data.AUTOTUNE)


def _source_order(images: Images) -> tuple[np.ndarray, np.ndarray]:
    """(positions as the pass sees them, pass slot → collection slot). Files stream in the
    collection's order; TFDS records stream by ascending record position."""
    if isinstance(images, TfdsImages):
        order = np.argsort(images.positions, kind="stable")
        return images.positions[order], order
    ids = np.arange(len(images))
    return ids, ids


def _cache_key(images: Images) -> str:
    digest = hashlib.sha256()
    if isinstance(images, FileImages):
        for path in images.paths.astype(str):
            digest.update(path.encode() + b"\0")
            stat = os.stat(path) if os.path.exists(path) else None
            digest.update(f"{stat and stat.st_size}:{stat and stat.st_mtime_ns}".encode())
    else:
        digest.update(f"{images.name}|{images.split}|{images.data_dir}".encode())
        digest.update(np.ascontiguousarray(images.positions).tobytes())
    digest.update(f"|{images.stored}|{images.channels}".encode())
    return digest.hexdigest()[:32]


def prepare(images: Images, cache: str, folder: Path | None = None) -> Prepared:
    """Decode `images` once (see the module doc). `cache` is memory, disk or none (after
    `choose`); `folder` is where disk caches live. In-RAM arrays pass through untouched."""
    if isinstance(images, (ArrayImages, DiskImages)):
        return Prepared(images, np.zeros(0, np.int64), ())
    if cache == "none" and not images.random_access:
        raise DataError(
            f"cache=none needs images readable by index (folder:, list:, idx:); "
            f"{images.describe()} stream in order: use cache=auto, memory or disk")
    if cache == "disk":
        return _prepare_disk(images, folder)
    side, channels = images.stored, images.channels
    keep = np.zeros((len(images), side, side, channels), np.uint8) if cache == "memory" else None
    seen = np.zeros(len(images), bool)
    order_positions, slots = _source_order(images)
    slot_of = dict(zip(order_positions.tolist(), slots.tolist(), strict=True)) if isinstance(
        images, TfdsImages) else None
    for positions, batch in _decode_pass(images):
        pos = positions.numpy()
        idx = pos if slot_of is None else np.array([slot_of[p] for p in pos.tolist()], np.int64)
        seen[idx] = True
        if keep is not None:
            keep[idx] = batch.numpy()
    bad = np.flatnonzero(~seen)
    good = np.flatnonzero(seen)
    if cache == "memory":
        out: Images = ArrayImages(keep[good], view=images.view)
    else:
        out = images.take(good)
    return Prepared(out, bad, _names(images, bad[:SHOWN_BAD]))


def _prepare_disk(images: Images, folder: Path | None) -> Prepared:
    """Into `<folder>/<key>.u8` (+ `.json`: count, side, channels, bad positions); reused
    when it exists. Written to a temporary name and renamed, so a killed pass leaves no
    half cache behind."""
    if folder is None:
        raise DataError("cache=disk needs a folder (checkpoint_dir/cache)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the image cache folder {folder}: {err}") from None
    key = _cache_key(images)
    data, meta = folder / f"{key}.u8", folder / f"{key}.json"
    side, channels = images.stored, images.channels
    if not (data.exists() and meta.exists()):
        _, slots = _source_order(images)
        slot_of = None
        if isinstance(images, TfdsImages):
            slot_of = dict(zip(images.positions[slots].tolist(), slots.tolist(), strict=True))
        rows = np.full(len(images), -1, np.int64)
        tmp = data.with_suffix(f".tmp{os.getpid()}")
        count = 0
        with open(tmp, "wb") as out:
            for positions, batch in _decode_pass(images):
                pos = positions.numpy()
                idx = pos if slot_of is None else np.array([slot_of[p] for p in pos.tolist()])
                out.write(np.ascontiguousarray(batch.numpy()).tobytes())
                rows[idx] = np.arange(count, count + len(idx))
                count += len(idx)
        os.replace(tmp, data)
        meta_tmp = meta.with_suffix(f".tmp{os.getpid()}")
        meta_tmp.write_text(json.dumps({"count": count, "side": side, "channels": channels,
                                        "rows": rows.tolist()}))
        os.replace(meta_tmp, meta)
    info = json.loads(meta.read_text())
    rows = np.asarray(info["rows"], np.int64)
    bad = np.flatnonzero(rows < 0)
    disk = DiskImages(str(data), info["count"], side, channels, rows=rows[rows >= 0],
                      view=images.view)
    return Prepared(disk, bad, _names(images, bad[:SHOWN_BAD]))
