"""Any TFDS image-classification dataset, streamed: labels now, images in the cache pass.

Only the labels are read here, with the images left encoded (``SkipDecoding``), so a split of
120k images costs one pass over its records and a few hundred kB of labels. The images stay
``TfdsImages`` (record positions) until ``training.data.cache`` streams them once, decoded and
resized inside tf.data, into memory or a disk cache. Variable-size datasets
(caltech_birds2011, cars196, stanford_online_products, food101, ...) work: the cache pass
resizes each image to ``image_size`` (default 224 when the dataset's size is not fixed).
"""

from __future__ import annotations

import difflib
import os

import numpy as np
import tensorflow as tf

from training.data import catalog
from training.data.images import TfdsImages
from training.data.source import Source, check_labels
from training.errors import DataError

OFFLINE_OPTIONS = (
    "offline options: dataset=digits (bundled with scikit-learn), dataset=idx:PATH "
    "(a folder of MNIST-format IDX files), folder:PATH or list:FILE (your own images), or a "
    "data_dir / TFDS_DATA_DIR already holding the prepared TFDS dataset"
)
LABEL_BATCH = 8192


def load_failed(name: str, what: str, data_dir: str | None, err: Exception) -> DataError:
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


def builder_info(name: str, data_dir: str | None, valid: str):
    """(info, image key, label key) of `name`, checked to be image classification."""
    import tensorflow_datasets as tfds

    builders = tfds.list_builders()  # offline: the registry is in the installed package
    if name not in builders:
        ours = [*catalog.NAMED, *catalog.PROTOCOLS]
        close = difflib.get_close_matches(name, ours, n=2) + difflib.get_close_matches(
            name, builders, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"unknown dataset {name!r}.{hint} Valid: {valid}")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as err:
        raise load_failed(name, "metadata", data_dir, err) from err
    info = builder.info
    keys = info.supervised_keys
    pair = keys if isinstance(keys, tuple) and len(keys) == 2 else (None, None)
    image, label = (info.features[k] if k in info.features else None for k in pair)
    if not (isinstance(image, tfds.features.Image) and isinstance(label, tfds.features.ClassLabel)):
        raise DataError(
            f"TFDS dataset {name!r} is not image classification (supervised keys {keys}); "
            f"valid: {valid}"
        )
    return info, pair[0], pair[1]


def read_labels(name: str, split: str, data_dir: str | None, image_key: str,
                label_key: str) -> np.ndarray:
    """The labels of one split, in record order, images skipped (never decoded)."""
    import tensorflow_datasets as tfds

    try:
        ds = tfds.load(name, split=split, data_dir=data_dir, shuffle_files=False,
                       decoders={image_key: tfds.decode.SkipDecoding()})
        parts = [b.numpy() for b in ds.map(lambda ex: ex[label_key]).batch(LABEL_BATCH)]
    except tf.errors.OpError as err:
        raise load_failed(name, f"split {split!r}", data_dir, err) from err
    except Exception as err:  # TFDS raises many types for "could not get it"
        raise load_failed(name, f"split {split!r}", data_dir, err) from err
    if not parts:
        raise DataError(f"TFDS dataset {name!r} split {split!r} is empty")
    return np.concatenate(parts)


def load_tfds(name: str, data_dir: str | None = None, *, splits=("train", "test"),
              valid: str = "") -> Source:
    """TFDS `name`: its `splits` (train, test) as streamed collections. One entry such as
    ("train+test",) pools every image into train, with test = the same pool (protocols that
    split by class). Without a test split in the metadata, test is None (held out later)."""
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or None
    info, image_key, label_key = builder_info(name, data_dir, valid)
    names = tuple(info.features[label_key].names)
    shape = info.features[image_key].shape
    channels = 1 if shape[-1] == 1 else 3
    natural = shape[0] if shape[0] is not None and shape[0] == shape[1] else None

    def collection(split):
        labels = read_labels(name, split, data_dir, image_key, label_key)
        y = check_labels(labels, len(names), f"TFDS {name} {split}")
        images = TfdsImages(name, split, data_dir, image_key, np.arange(len(y), dtype=np.int64),
                            channels=channels, natural=natural)
        return images, y

    x_train, y_train = collection(splits[0])
    if len(splits) == 1:
        return Source(x_train, y_train, x_train, y_train, names, test_is_pool=True)
    # info.splits is empty when metadata is not prepared yet (and under mock_data):
    # then assume the usual train/test layout.
    x_test = y_test = None
    if not info.splits or splits[1] in info.splits:
        x_test, y_test = collection(splits[1])
    return Source(x_train, y_train, x_test, y_test, names)
