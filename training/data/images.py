"""The images of one split, in order, read lazily: what ``Splits.x_train`` and friends hold.

Four kinds, one interface (``len``, ``take(indices)``, ``images[key]`` → float32 NumPy, and
the loaders ``training.data.pipeline`` builds tf.data on):

- ``ArrayImages``: a NumPy array in RAM: digits (float32 in [0, 1]), ``idx:`` (uint8) and the
  memory cache (uint8). The pipeline gathers whole batches from one tf constant.
- ``FileImages``: image files (``folder:``, ``list:``): read, decoded and resized per image
  inside tf.data, in parallel. Random access by index, so ``cache=none`` works.
- ``DiskImages``: the disk cache, one file of fixed-size uint8 records read with ``pread``.
  Not memory-mapped on purpose: mapped pages count in the process's RSS, which would then
  grow with the dataset; page-cache reads do not.
- ``TfdsImages``: positions in a TFDS split. TFDS's record files stream in order, so these
  have no random access: ``training.data.cache`` streams them once into memory or disk.

A collection carries its *view*: the augmentation policy and the model's ``image_size``;
``images[key]`` is the test view (``transforms.test_view``): what evaluation, figures and the
logged model's input example see.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from training.data import transforms

READ_BATCH = 256  # images per tf.data batch when materialising a slice


@dataclasses.dataclass(frozen=True)
class View:
    """How images become model inputs: `policy` (augment name) at side `size` (None = the
    collection's own size)."""

    policy: str = "none"
    size: int | None = None


class Images:
    """N images of one split. Subclasses set `channels`, `natural` (side of what the loader
    yields when fixed, else None) and implement `__len__`, `take`, and a loader."""

    channels: int
    natural: int | None
    view: View = View()
    batched = False  # True: `load_batch` gathers a whole batch at once (in-RAM arrays)
    random_access = True

    # --- sizes --------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        """The model's input side S."""
        size = self.view.size or self.natural
        if size is None:
            raise ValueError("variable-size images need an image_size (View(size=...))")
        return size

    @property
    def stored(self) -> int:
        """Side of the images a loader yields (the cache's side)."""
        return transforms.stored_size(self.view.policy, self.image_size)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, S, S, C): what the model sees."""
        return (len(self), self.image_size, self.image_size, self.channels)

    @property
    def dtype(self):
        return np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        return 4

    def with_view(self, view: View) -> Images:
        return dataclasses.replace(self, view=view)

    # --- loaders (tf) ---------------------------------------------------------------------
    def load_one(self, index: tf.Tensor) -> tf.Tensor:
        """int64 scalar → the image as stored (uint8 or float32 (stored, stored, C))."""
        raise NotImplementedError(f"{type(self).__name__} has no random access")

    def load_batch(self, indices: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{len(self)} images"

    # --- NumPy reads (small: evaluation batches, figures, examples) ------------------------
    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):  # x[..., 0], x[:5, :, :, 0]: rows first, then the rest
            first = key[0] if key and key[0] is not Ellipsis else slice(None)
            rest = key[1:] if key and key[0] is not Ellipsis else key
            rows = self[first]
            return rows[(slice(None), *rest)] if np.ndim(np.arange(len(self))[first]) else \
                rows[rest]
        indices = np.arange(len(self))[key]
        scalar = np.ndim(indices) == 0
        indices = np.atleast_1d(indices).astype(np.int64)
        out = self._read(indices)
        return out[0] if scalar else out

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def _read(self, indices: np.ndarray) -> np.ndarray:
        """float32 (k, S, S, C), the test view, through the same tf ops as training reads."""
        policy, size = self.view.policy, self.image_size
        ds = tf.data.Dataset.from_tensor_slices(indices)
        if self.batched:
            ds = ds.batch(READ_BATCH).map(self.load_batch)
        else:
            ds = ds.map(self.load_one, num_parallel_calls=tf.data.AUTOTUNE).batch(READ_BATCH)
        ds = ds.map(lambda x: transforms.test_view(x, policy, size))
        parts = [np.asarray(b) for b in ds]
        return np.concatenate(parts) if parts else np.zeros((0, size, size, self.channels),
                                                            np.float32)


def _eager_constant(owner, values) -> tf.Tensor:
    """One eager tf constant per collection, built on first use. `init_scope` lifts it out of
    whatever graph is being traced (a tf.data map, a tf.function): a constant made inside a
    trace and cached would be a symbolic tensor that later eager reads cannot use."""
    cached = owner.__dict__.get("_tensor")
    if cached is None:
        with tf.init_scope():
            cached = tf.constant(values())
        object.__setattr__(owner, "_tensor", cached)
    return cached


@dataclasses.dataclass(frozen=True, eq=False)
class ArrayImages(Images):
    """In RAM: uint8 (N, h, w, C) (÷255 on read) or float32 (N, h, w, C) in [0, 1]."""

    array: np.ndarray
    view: View = View()
    batched = True

    def __post_init__(self):
        if self.array.ndim < 2 or self.array.dtype not in (np.uint8, np.float32):
            raise ValueError(f"ArrayImages needs uint8 or float32 (N, H, W, C), got "
                             f"{self.array.dtype} {self.array.shape}")

    @property
    def is_image(self) -> bool:
        """False for rows that are not (H, W, C) images (feature vectors): read as they are."""
        return self.array.ndim == 4

    @property
    def shape(self):
        return super().shape if self.is_image else self.array.shape

    @property
    def channels(self) -> int:
        return int(self.array.shape[-1])

    @property
    def natural(self) -> int | None:
        return int(self.array.shape[1])

    def __len__(self) -> int:
        return len(self.array)

    def take(self, indices) -> ArrayImages:
        return dataclasses.replace(self, array=self.array[np.asarray(indices, np.int64)])

    def _constant(self) -> tf.Tensor:
        # One constant per collection (built on first use): MNIST train 47 MB as uint8.
        return _eager_constant(self, lambda: self.array)

    def load_one(self, index):
        return tf.gather(self._constant(), index)

    def load_batch(self, indices):
        return tf.gather(self._constant(), indices)

    def _read(self, indices: np.ndarray) -> np.ndarray:
        if not self.is_image:
            x = self.array[indices]
            return x.astype(np.float32) / np.float32(255) if x.dtype == np.uint8 else x.copy()
        same = self.array.shape[1] == self.array.shape[2] == self.image_size
        if same and self.stored == self.image_size:
            # Fast path, same IEEE result as the tf read: x / 255 correctly rounded in float32.
            x = self.array[indices]
            return x.astype(np.float32) / np.float32(255) if x.dtype == np.uint8 else x.copy()
        return super()._read(indices)

    def describe(self) -> str:
        return f"{len(self)} images in memory ({self.array.dtype}, {self.array.nbytes / 2**20:.0f} MiB)"


@dataclasses.dataclass(frozen=True, eq=False)
class FileImages(Images):
    """Image files, decoded per read: `paths` (N,) str; `channels` 1 or 3; `natural` the
    common side when every file has it (None when sizes vary)."""

    paths: np.ndarray
    channels: int = 3
    natural: int | None = None
    view: View = View()

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, indices) -> FileImages:
        return dataclasses.replace(self, paths=self.paths[np.asarray(indices, np.int64)])

    def _paths(self) -> tf.Tensor:
        return _eager_constant(self, lambda: self.paths.astype(str))

    def load_one(self, index):
        raw = tf.io.read_file(tf.gather(self._paths(), index))
        return transforms.decode_bytes(raw, self.stored, self.channels)

    def describe(self) -> str:
        return f"{len(self)} image files"


@dataclasses.dataclass(frozen=True, eq=False)
class DiskImages(Images):
    """The disk cache: `count` records of uint8 (side, side, C) in `path`, in order."""

    path: str
    count: int
    side: int
    channels: int
    rows: np.ndarray | None = None  # which records, in order (None = all)
    view: View = View()

    @property
    def natural(self) -> int:
        return self.side

    def __len__(self) -> int:
        return self.count if self.rows is None else len(self.rows)

    def take(self, indices) -> DiskImages:
        rows = np.arange(self.count) if self.rows is None else self.rows
        return dataclasses.replace(self, rows=rows[np.asarray(indices, np.int64)])

    def _record(self) -> int:
        return self.side * self.side * self.channels

    def read_rows(self, indices: np.ndarray) -> np.ndarray:
        """uint8 (k, side, side, C) by pread: no mapping, so the RSS stays flat."""
        rows = np.asarray(indices, np.int64) if self.rows is None else self.rows[indices]
        size = self._record()
        out = np.empty((len(rows), self.side, self.side, self.channels), np.uint8)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for slot, row in enumerate(rows.tolist()):
                out[slot] = np.frombuffer(os.pread(fd, size, row * size), np.uint8).reshape(
                    out.shape[1:])
        finally:
            os.close(fd)
        return out

    batched = True  # one pread loop per batch: one Python call instead of B

    def load_batch(self, indices):
        images = tf.numpy_function(self.read_rows, [indices], tf.uint8, stateful=False)
        images.set_shape([None, self.side, self.side, self.channels])
        return images

    def load_one(self, index):
        return self.load_batch(index[None])[0]

    def describe(self) -> str:
        return f"{len(self)} images cached on disk in {self.path}"


@dataclasses.dataclass(frozen=True, eq=False)
class TfdsImages(Images):
    """Positions in one TFDS split, streamed in order (``training.data.cache`` reads them)."""

    name: str
    split: str
    data_dir: str | None
    image_key: str
    positions: np.ndarray  # int64, indices into the split, in this collection's order
    channels: int = 3
    natural: int | None = None
    view: View = View()
    random_access = False

    def __len__(self) -> int:
        return len(self.positions)

    def take(self, indices) -> TfdsImages:
        return dataclasses.replace(self,
                                   positions=self.positions[np.asarray(indices, np.int64)])

    def _read(self, indices):
        raise NotImplementedError("TFDS images are read once into the cache first "
                                  "(training.data.cache.prepare)")

    def describe(self) -> str:
        return f"{len(self)} images of TFDS {self.name}[{self.split}]"


def as_images(x) -> Images:
    """An `Images` as is; a NumPy array (N, H, W[, C]) becomes `ArrayImages`."""
    if isinstance(x, Images):
        return x
    array = np.asarray(x)
    if array.ndim == 3:
        array = array[..., None]
    if array.dtype != np.uint8:
        array = array.astype(np.float32, copy=False)
    return ArrayImages(array)
