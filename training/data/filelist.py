"""``list:TRAIN[,TEST]`` with ``data_root=``: text files of ``relative/path.jpg <label>`` lines.

This is how ImageNet-LT, Places-LT and iNaturalist ship their splits; the official
``ImageNet_LT_train.txt`` / ``ImageNet_LT_test.txt`` work unchanged. A path is split from its
label at the last whitespace (so paths may hold spaces); blank lines are skipped. A list file
that is not found as given is looked up in ``data_root``.

A label may be a float target instead (``path.jpg 23.5``): a list with any non-integer value
is a regression dataset (image models with a regression head), and so is one with a negative
integer (no class label is negative); one of integers >= 0 serves both tasks (class labels,
or values for a regression loss).

Every line is checked before any image is read: the file exists, the path stays inside
``data_root`` (no ``..`` escape, no absolute path); for a classification or retrieval loss a
test label must be one of the training list's classes (0..max training label), else it has no
class to be scored against.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from training.data.files import as_array, scan
from training.data.images import FileImages
from training.data.source import Source
from training.errors import DataError


def _list_file(name: str, root: Path | None) -> Path:
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if root is not None and (root / name).is_file():
        return root / name
    where = f" (nor in data_root={root})" if root is not None else ""
    raise DataError(f"list:{name}: no such list file{where}")


def _value(label: str, where: str) -> int | float:
    try:
        return int(label)
    except ValueError:
        pass
    try:
        value = float(label)
    except ValueError:
        raise DataError(f"{where}: label {label!r} is not an integer (a class label) nor a "
                        "float (a regression target); each line: 'relative/path.jpg "
                        "<label>'") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: target {label!r} is not a finite number")
    return value


def parse(list_path: Path, root: Path) -> tuple[list[Path], np.ndarray]:
    """(image paths, labels) of one list file: int64 labels, or float64 when any line has a
    float target; DataError naming the file and line."""
    # Lexical checks (normpath), one stat per distinct file: ~5 µs a line, so the 115.8k lines
    # of ImageNet_LT_train.txt take about a second.
    paths, labels, exists = [], [], {}
    base = os.path.normpath(os.path.abspath(root))
    for number, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{list_path}:{number}"
        parts = line.strip().rsplit(None, 1)
        if len(parts) != 2:
            raise DataError(f"{where}: expected 'relative/path.jpg <label>', got {line!r}")
        relative, label = parts
        value = _value(label, where)
        if os.path.isabs(relative):
            raise DataError(f"{where}: path {relative!r} is absolute; list paths are relative "
                            f"to data_root={root}")
        full = os.path.normpath(os.path.join(base, relative))
        if not full.startswith(base + os.sep):
            raise DataError(f"{where}: path {relative!r} leaves data_root={root}; "
                            "list paths must stay inside it")
        if full not in exists:
            exists[full] = os.path.isfile(full)
        if not exists[full]:
            raise DataError(f"{where}: image {relative!r} not found under data_root={root}")
        paths.append(full)
        labels.append(value)
    if not paths:
        raise DataError(f"list file {list_path} holds no 'path label' lines")
    kind = np.int64 if all(isinstance(v, int) for v in labels) else np.float64
    return paths, np.asarray(labels, kind)


def _range_problem(labels: np.ndarray, classes: int, list_path: Path) -> str | None:
    bad = np.flatnonzero(labels >= classes)  # >= 0: a negative one makes the list regression
    if bad.size:
        return (f"{list_path}: label {labels[bad[0]]} (entry {bad[0] + 1}) is out of range; "
                f"valid labels: 0..{classes - 1} (the training list's classes)")
    return None


def load_list(spec: str, data_root: str | None, image_size: int | None = None) -> Source:
    files = [f.strip() for f in spec.split(",")]
    if not files[0] or len(files) > 2 or not all(files):
        raise DataError(f"list:{spec}: expected list:TRAIN_FILE[,TEST_FILE]")
    if data_root is None:
        raise DataError(f"list:{spec} needs data_root=FOLDER, the folder the listed paths are "
                        "relative to")
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DataError(f"data_root={data_root}: no such folder")
    train_file = _list_file(files[0], root)
    train_paths, train_labels = parse(train_file, root)
    test_paths, test_labels = [], None
    if len(files) == 2:
        test_file = _list_file(files[1], root)
        test_paths, test_labels = parse(test_file, root)
    info = scan(train_paths + test_paths, need_size=image_size is None)
    make = lambda paths: FileImages(as_array(paths), info.channels, info.side)  # noqa: E731
    # Floats, or negative integers (no class label is negative): values for a regression loss.
    if any(labels.dtype.kind == "f" or labels.min() < 0
           for labels in (train_labels, test_labels) if labels is not None):
        return Source(make(train_paths), train_labels.astype(np.float64),
                      make(test_paths) if test_labels is not None else None,
                      None if test_labels is None else test_labels.astype(np.float64), (),
                      task="regression")
    classes = int(train_labels.max()) + 1
    # A test label beyond the training classes has no class to be scored against, but is a
    # fine value for a regression loss (ages 20..60 in train, 65 in test): raised on use.
    problem = None if test_labels is None else _range_problem(test_labels, classes, test_file)
    return Source(make(train_paths), train_labels.astype(np.int32),
                  make(test_paths) if test_labels is not None else None,
                  None if test_labels is None else test_labels.astype(np.int32),
                  tuple(str(c) for c in range(classes)), task="either", label_problem=problem)
