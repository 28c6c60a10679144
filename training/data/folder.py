"""``folder:PATH``: one subfolder per class, the layout of Keras's
``image_dataset_from_directory``.

- Class names are the sorted subfolder names (Keras sorts them the same way); label = index.
- Files: .jpg/.jpeg/.png/.bmp/.gif (any case), in sorted order within each class, searched
  recursively below the class folder as Keras does; grayscale or RGB.
- ``PATH/train`` and ``PATH/test`` both present: they are the two splits, and must hold the
  same class folders. Otherwise there is no test split and the caller holds out a stratified
  one (as for ``idx:``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.data.files import IMAGE_SUFFIXES, as_array, scan
from training.data.images import FileImages
from training.data.source import Source
from training.errors import DataError


def _classes(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(root: Path, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(
                f"folder:{root}: class folder {name!r} holds no images "
                f"({', '.join(IMAGE_SUFFIXES)}); remove it or add images")
        paths += found
        labels += [label] * len(found)
    return paths, np.asarray(labels, np.int32)


def load_folder(path: str, image_size: int | None = None) -> Source:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"folder:{path}: no such folder (expected one subfolder per class)")
    train_root, test_root = root / "train", root / "test"
    split = train_root.is_dir() and test_root.is_dir()
    classes = _classes(train_root if split else root)
    if len(classes) < 2:
        raise DataError(f"folder:{path}: found {len(classes)} class folder(s) "
                        f"({', '.join(classes) or 'none'}); need one subfolder per class, >= 2")
    if split:
        test_classes = _classes(test_root)
        if test_classes != classes:
            only_train = sorted(set(classes) - set(test_classes))
            only_test = sorted(set(test_classes) - set(classes))
            raise DataError(
                f"folder:{path}: train/ and test/ hold different class folders "
                f"(only in train: {only_train or 'none'}; only in test: {only_test or 'none'}); "
                "both splits need the same classes")
    train_paths, y_train = _files(train_root if split else root, classes)
    test_paths, y_test = _files(test_root, classes) if split else ([], None)
    info = scan(train_paths + test_paths, need_size=image_size is None)
    make = lambda paths: FileImages(as_array(paths), info.channels, info.side)  # noqa: E731
    return Source(make(train_paths), y_train, make(test_paths) if split else None, y_test,
                  tuple(classes))
