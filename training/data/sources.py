"""Where images come from: a registry of dataset sources, each returning raw splits.

A source turns a dataset name into a ``Source``: float32 NHWC images in [0, 1], int32
labels in [0, C), and the class names. It does not split or subsample; ``splits.py`` does.

- ``digits``: scikit-learn's bundled 8×8 digits (1,797 images, values 0..16). No network.
- ``idx:PATH``: a folder of MNIST-format IDX files (see ``idx.py``). No network.
- anything else: a TensorFlow Datasets name, loaded with ``tfds.load`` (downloads on first
  use into ``data_dir`` or ``$TFDS_DATA_DIR``).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from training.data import idx
from training.errors import DataError

# Offline-friendly names shown in messages; TFDS names that are image classification.
KNOWN_TFDS = ("mnist", "fashion_mnist", "kmnist", "emnist", "cifar10", "cifar100", "svhn_cropped")
OFFLINE_OPTIONS = (
    "offline options: dataset=digits (bundled with scikit-learn), dataset=idx:PATH "
    "(a folder of MNIST-format IDX files), or a data_dir / TFDS_DATA_DIR already holding "
    "the prepared TFDS dataset"
)


@dataclasses.dataclass(frozen=True)
class Source:
    """Raw splits of one dataset.

    Attributes:
        x_train: float32 (N, H, W, C) in [0, 1].
        y_train: int32 (N,) in [0, len(class_names)).
        x_test, y_test: the source's own test split, or None when it has none (the caller
            then holds out a stratified part of train).
        class_names: one name per class, index = label.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    class_names: tuple[str, ...]


def available_datasets() -> str:
    """Human text listing the accepted dataset names, for error messages and --help."""
    return f"digits, idx:PATH, or any TFDS image-classification name ({', '.join(KNOWN_TFDS)}, ...)"


def _to_nhwc_float(images: np.ndarray, max_value: float) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) integers in [0, max_value] -> float32 NHWC in [0, 1]."""
    x = np.asarray(images, dtype=np.float32) / np.float32(max_value)
    return x[..., None] if x.ndim == 3 else x


def _check_labels(y: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    """Labels as int32, all in [0, num_classes), else DataError naming the bad values."""
    y = np.asarray(y).astype(np.int64).reshape(-1)
    bad = np.unique(y[(y < 0) | (y >= num_classes)])
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:10]) + (" ..." if bad.size > 10 else "")
        raise DataError(
            f"{where}: label(s) {shown} outside the class range [0, {num_classes}); "
            f"labels must be 0..C-1 with every class present in the training split"
        )
    return y.astype(np.int32)


def load_digits() -> Source:
    """scikit-learn's 8×8 digits; it has no test split (the caller holds one out)."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = _to_nhwc_float(bunch.images, 16.0)  # pixel values are counts 0..16
    names = tuple(str(n) for n in bunch.target_names)
    return Source(x, _check_labels(bunch.target, len(names), "digits"), None, None, names)


def load_idx_folder(folder: str) -> Source:
    """``idx:PATH``: train pair and/or t10k pair; classes = distinct training labels."""
    pairs = idx.find_idx_files(Path(folder).expanduser())
    # Without a train pair the test pair is the whole pool (the caller holds out 20 %).
    train_key = "train" if "train" in pairs else "test"
    images, labels = idx.read_pair(*pairs[train_key])
    num_classes = len(np.unique(labels))
    y_train = _check_labels(labels, num_classes, f"idx:{folder} ({pairs[train_key][1].name})")
    x_test = y_test = None
    if train_key == "train" and "test" in pairs:
        test_images, test_labels = idx.read_pair(*pairs["test"])
        if test_images.shape[1:] != images.shape[1:]:
            raise DataError(
                f"idx:{folder}: test images are {test_images.shape[1:]}, train images "
                f"{images.shape[1:]}; both splits must have the same image size"
            )
        x_test = _to_nhwc_float(test_images, 255.0)
        where = f"idx:{folder} ({pairs['test'][1].name})"
        y_test = _check_labels(test_labels, num_classes, where)
    names = tuple(str(c) for c in range(num_classes))
    return Source(_to_nhwc_float(images, 255.0), y_train, x_test, y_test, names)


def _load_failed(name: str, what: str, data_dir: str | None, err: Exception) -> DataError:
    """The DataError for a TFDS dataset that could not be built or read."""
    if isinstance(err, ModuleNotFoundError):
        # TFDS 4.9.x imports importlib_resources without declaring it on Python >= 3.9
        # (tensorflow/datasets#11212): it fails before any download is tried.
        return DataError(
            f"TFDS dataset {name!r} needs the Python package {err.name!r}, which is not "
            f"installed (pip install {err.name}); {OFFLINE_OPTIONS}"
        )
    where = data_dir or "the default TFDS folder"
    return DataError(
        f"could not load TFDS dataset {name!r} {what} (download failed or {where} does not "
        f"hold it: {type(err).__name__}: {err}); {OFFLINE_OPTIONS}"
    )


def _tfds_builder(name: str, data_dir: str | None):
    """The TFDS builder for ``name``, checked to be fixed-size image classification."""
    import tensorflow_datasets as tfds

    builders = tfds.list_builders()  # offline: the registry is in the installed package
    if name not in builders:
        close = difflib.get_close_matches(name, builders, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"unknown dataset {name!r}.{hint} Valid: {available_datasets()}")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as err:
        raise _load_failed(name, "metadata", data_dir, err) from err
    info = builder.info
    keys = info.supervised_keys
    pair = keys if isinstance(keys, tuple) and len(keys) == 2 else (None, None)
    image, label = (info.features[k] if k in info.features else None for k in pair)
    if not (isinstance(image, tfds.features.Image) and isinstance(label, tfds.features.ClassLabel)):
        raise DataError(
            f"TFDS dataset {name!r} is not image classification (supervised keys {keys}); "
            f"valid: {available_datasets()}"
        )
    shape = info.features[keys[0]].shape
    if len(shape) != 3 or None in shape:
        raise DataError(
            f"TFDS dataset {name!r} has images of shape {shape}; need a fixed (H, W, C)"
        )
    return builder


def _tfds_split(name: str, split: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """One TFDS split as uint8 images (N, H, W, C) and integer labels (N,)."""
    import tensorflow_datasets as tfds

    try:
        ds = tfds.load(name, split=split, as_supervised=True, data_dir=data_dir)
        # Batched iteration: one numpy copy per 4096 images instead of one per image.
        batches = list(tfds.as_numpy(ds.batch(4096)))
    except Exception as err:  # TFDS raises many types for "could not get it"
        raise _load_failed(name, f"split {split!r}", data_dir, err) from err
    if not batches:
        raise DataError(f"TFDS dataset {name!r} split {split!r} is empty")
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    return images, labels


def load_tfds(name: str, data_dir: str | None = None) -> Source:
    """Any TFDS image-classification dataset; its ``test`` split when it has one."""
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or None
    info = _tfds_builder(name, data_dir).info
    label_key = info.supervised_keys[1]
    names = tuple(info.features[label_key].names)
    images, labels = _tfds_split(name, "train", data_dir)
    y_train = _check_labels(labels, len(names), f"TFDS {name} train")
    # info.splits is empty when metadata is not prepared yet (and under mock_data):
    # then assume the usual train/test layout.
    x_test = y_test = None
    if not info.splits or "test" in info.splits:
        test_images, test_labels = _tfds_split(name, "test", data_dir)
        x_test = _to_nhwc_float(test_images, 255.0)
        y_test = _check_labels(test_labels, len(names), f"TFDS {name} test")
    return Source(_to_nhwc_float(images, 255.0), y_train, x_test, y_test, names)


# Registry: exact names, then "prefix:" names; anything else goes to TFDS.
NAMED: dict[str, Callable[[], Source]] = {"digits": load_digits}
PREFIXED: dict[str, Callable[[str], Source]] = {"idx:": load_idx_folder}


def load_source(dataset: str, data_dir: str | None = None) -> Source:
    """Resolve ``dataset`` through the registry and load it.

    Raises:
        DataError: empty or unknown name, missing/corrupt files, failed download.
    """
    if not isinstance(dataset, str) or not dataset.strip():
        raise DataError(
            f"dataset must be a non-empty name, got {dataset!r}; valid: {available_datasets()}"
        )
    if dataset in NAMED:
        return NAMED[dataset]()
    for prefix, loader in PREFIXED.items():
        if dataset.startswith(prefix):
            path = dataset[len(prefix) :]
            if not path:
                raise DataError(f"dataset {dataset!r} names no folder; use {prefix}PATH")
            return loader(path)
    return load_tfds(dataset, data_dir)
