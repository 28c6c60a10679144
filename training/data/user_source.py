"""``dataset=module:function``: your own data source.

``function()`` returns ``((train_images, train_labels), test, class_names)`` where ``test`` is
``(test_images, test_labels)`` or None (then a stratified test split is held out). Images are
a NumPy array (N, H, W[, C]) of uint8 (0..255) or floats in [0, 1], or a list of image file
paths (decoded like ``folder:``). Labels are integers 0..C-1. The README shows one.
"""

from __future__ import annotations

import importlib

import numpy as np

from training.data.files import as_array, scan
from training.data.images import FileImages, Images, as_images
from training.data.source import Source, check_labels
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
    names = tuple(str(c) for c in class_names)
    train = _images(x_train, f"{name} train", image_size)
    labels = check_labels(y_train, len(names), f"{name} train")
    if len(labels) != len(train):
        raise DataError(f"{name}: {len(train)} train images but {len(labels)} labels")
    if test is None:
        return Source(train, labels, None, None, names)
    x_test, y_test = test
    test_images = _images(x_test, f"{name} test", image_size)
    return Source(train, labels, test_images, check_labels(y_test, len(names), f"{name} test"),
                  names)
