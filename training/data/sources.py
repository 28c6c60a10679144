"""The data-source registry: a dataset name → a ``Source`` (labels, lazy images, classes).

Names resolve in this order (``training.data.catalog`` lists them for ``--help``):
a protocol (``cub200``, ``cifar10_lt``, ...), an exact name (``digits``), a prefix
(``idx:``, ``folder:``, ``list:``), a user's ``module:function``, else a TFDS name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from training.data import catalog
from training.data.csv_source import load_csv
from training.data.diabetes import load_diabetes
from training.data.digits import load_digits
from training.data.filelist import load_list
from training.data.folder import load_folder
from training.data.idx import load_idx_folder
from training.data.source import Source
from training.data.tfds_source import OFFLINE_OPTIONS, load_tfds
from training.data.user_source import load_user
from training.errors import DataError

__all__ = ["OFFLINE_OPTIONS", "Source", "available_datasets", "load_digits", "load_idx_folder",
           "load_source"]


def available_datasets() -> str:
    """Human text listing the accepted dataset names, for error messages and --help."""
    return ("digits, diabetes (regression), csv:PATH (regression), idx:PATH, folder:PATH, list:TRAIN[,TEST], module:function, a protocol ("
            + ", ".join(catalog.PROTOCOLS) + ") or any TFDS image-classification name "
            "(mnist, fashion_mnist, cifar10, caltech_birds2011, ...)")


def _table(table) -> Source:
    """A regression table as a source: rows in `table`, split later (training.data.regression)."""
    return Source(None, table.y, None, None, (), task="regression", table=table)


NAMED: dict[str, Callable[..., Source]] = {
    "digits": lambda **_: load_digits(),
    "diabetes": lambda **_: _table(load_diabetes()),
}
PREFIXED: dict[str, Callable[..., Source]] = {
    "idx:": lambda path, **_: load_idx_folder(path),
    "folder:": lambda path, image_size=None, **_: load_folder(path, image_size),
    "list:": lambda path, data_root=None, image_size=None, **_: load_list(path, data_root,
                                                                          image_size),
    "csv:": lambda path, target=None, weight=None, **_: _table(load_csv(path, target, weight)),
}


def _protocol(entry: catalog.Protocol, data_dir, data_root, image_size) -> Source:
    if entry.source == "list":
        if data_root is None:
            raise DataError(f"dataset={entry.name} needs data_root=FOLDER: the image folder "
                            f"holding {' and '.join(entry.lists)} ({entry.citation})")
        src = load_list(",".join(entry.lists), data_root, image_size)
    else:
        src = load_tfds(entry.source, data_dir, splits=entry.tfds_split,
                        valid=available_datasets())
    return dataclasses.replace(src, train_classes=entry.train_classes,
                               long_tail=entry.long_tail)


def load_source(dataset: str, data_dir: str | None = None, *, data_root: str | None = None,
                image_size: int | None = None, target: str | None = None,
                weight: str | None = None) -> Source:
    """Resolve ``dataset`` through the registry and load its labels (images stay lazy).

    Raises:
        DataError: empty or unknown name, missing/corrupt files, failed download.
    """
    if not isinstance(dataset, str) or not dataset.strip():
        raise DataError(
            f"dataset must be a non-empty name, got {dataset!r}; valid: {available_datasets()}"
        )
    entry = catalog.protocol(dataset)
    if entry is not None:
        return _protocol(entry, data_dir, data_root, image_size)
    if dataset in NAMED:
        return NAMED[dataset]()
    for prefix, loader in PREFIXED.items():
        if dataset.startswith(prefix):
            path = dataset[len(prefix):]
            if not path:
                raise DataError(f"dataset {dataset!r} names no folder or file; use {prefix}PATH")
            return loader(path, data_root=data_root, image_size=image_size, target=target,
                          weight=weight)
    if catalog.is_user_source(dataset):
        return load_user(dataset, image_size)
    if ":" in dataset:
        raise DataError(f"unknown dataset prefix in {dataset!r}; valid: {available_datasets()}")
    return load_tfds(dataset, data_dir, valid=available_datasets())
