"""What every data source returns: labels in RAM, images as lazy collections.

A source turns a dataset name into a ``Source``. It does not split or subsample (``splits.py``
does, from the labels alone, so a 120k-image dataset costs 120k integers until the images are
read in tf.data).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from training.data.images import Images
from training.data.tabular import Table
from training.errors import DataError


@dataclasses.dataclass(frozen=True)
class Source:
    """Raw splits of one dataset.

    Attributes:
        x_train: the training pool's images (``training.data.images``), N of them.
        y_train: int32 (N,) in [0, len(class_names)).
        x_test, y_test: the source's own test split, or None when it has none (the caller
            then holds out a stratified part of train).
        class_names: one name per class, index = label.
        test_is_pool: x_test is the training pool itself (retrieval protocols that split by
            class: train on classes < train_classes, query the others).
        train_classes: retrieval: how many classes (0..n-1) to train on; None = ceil(C/2).
        long_tail: a protocol's long-tail IR applied to the whole training pool (Cao et al.).
        task: what the targets are: "classification" (class labels), "regression" (float
            targets) or "either" (integers from a list or your own source: class labels for
            a classification loss, values for a regression loss).
        table: a table's raw rows (``training.data.tabular.Table``, regression); then
            x_train is None and y_train the table's targets.
        label_problem: for task "either": why the integers are not class labels (a test label
            outside the training classes), raised only when a classification or retrieval
            loss asks for them; a regression loss reads them as values.
    """

    x_train: Images
    y_train: np.ndarray
    x_test: Images | None
    y_test: np.ndarray | None
    class_names: tuple[str, ...]
    test_is_pool: bool = False
    train_classes: int | None = None
    long_tail: float | None = None
    task: str = "classification"
    table: Table | None = None
    label_problem: str | None = None


def check_labels(y, num_classes: int, where: str) -> np.ndarray:
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


def is_integer_valued(y) -> bool:
    """Every value a whole number (labels or integer targets); True for what is not numbers
    at all (the label check then names it)."""
    y = np.asarray(y)
    if y.dtype.kind not in "iubf":
        return True
    return y.dtype.kind in "iub" or bool(np.all(np.isfinite(y)) and np.all(y == np.round(y)))
