"""``dataset=module:function``: your own data source.

``function()`` returns ``((train_images, train_labels), test, class_names)`` where ``test`` is
``(test_images, test_labels)`` or None (then a stratified test split is held out). Images are
a NumPy array (N, H, W[, C]) of uint8 (0..255) or floats in [0, 1], or a list of image file
paths (decoded like ``folder:``). Labels are integers 0..C-1. The README shows one.

Float targets make it a regression dataset (image models with a regression head): return
float labels (any non-integer value), with ``class_names`` None or empty.
"""

from __future__ import annotations

import importlib

import numpy as np

from training.data.files import as_array, scan
from training.data.images import FileImages, Images, as_images
from training.data.source import Source, check_labels, is_integer_valued
from training.errors import DataError

CONTRACT = ("function() must return ((train_images, train_labels), (test_images, test_labels) "
            "or None, class_names)")


def _images(images, where: str, image_size: int | None) -> Images:
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], str):
        info = scan(list(images), need_size=image_size is None)
        return FileImages(as_array(images), info.channels, info.side)
    array = np.asarray(images)
    if array.ndim not in (3, 4) or array.dtype.kind not in "uif":
        raise DataError(f"{where}: images must be an array (N, H, W[, C]) or a list of file "
                        f"paths; got {array.dtype} {array.shape}. {CONTRACT}")
    if array.dtype.kind == "f" and (array.min(initial=0) < 0 or array.max(initial=0) > 1):
        raise DataError(f"{where}: float images must be in [0, 1]; got "
                        f"[{array.min():.3g}, {array.max():.3g}]")
    if array.dtype.kind in "ui":
        array = array.astype(np.uint8)
    return as_images(array)


def load_user(name: str, image_size: int | None = None) -> Source:
    module_name, _, function_name = name.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # noqa: BLE001 (the user's module: report any failure)
        raise DataError(f"dataset={name!r} does not import ({type(exc).__name__}: {exc})") from None
    try:
        result = function()
        (x_train, y_train), test, class_names = result
    except (TypeError, ValueError) as exc:
        raise DataError(f"dataset={name!r}: {CONTRACT} ({exc})") from None
    train = _images(x_train, f"{name} train", image_size)
    if not class_names or not is_integer_valued(y_train) or (
            test is not None and not is_integer_valued(test[1])):
        return _regression(name, train, y_train, test, image_size)
    names = tuple(str(c) for c in class_names)
    labels = check_labels(y_train, len(names), f"{name} train")
    if len(labels) != len(train):
        raise DataError(f"{name}: {len(train)} train images but {len(labels)} labels")
    if test is None:
        return Source(train, labels, None, None, names, task="either")
    x_test, y_test = test
    test_images = _images(x_test, f"{name} test", image_size)
    return Source(train, labels, test_images, check_labels(y_test, len(names), f"{name} test"),
                  names, task="either")


def _targets(y, count: int, where: str) -> np.ndarray:
    try:
        y = np.asarray(y, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{where}: targets must be numbers (float targets make a regression "
                        f"dataset). {CONTRACT}") from None
    if len(y) != count:
        raise DataError(f"{where}: {count} images but {len(y)} targets")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise DataError(f"{where}: {bad.size} target(s) are NaN or inf (first at index "
                        f"{int(bad[0])}); targets must be finite")
    return y


def _regression(name, train, y_train, test, image_size) -> Source:
    """Float targets: a regression source (no classes)."""
    y = _targets(y_train, len(train), f"{name} train")
    if test is None:
        return Source(train, y, None, None, (), task="regression")
    x_test = _images(test[0], f"{name} test", image_size)
    return Source(train, y, x_test, _targets(test[1], len(x_test), f"{name} test"), (),
                  task="regression")
