"""What image files are: their common side and channel count, read from headers (Pillow).

Pillow's ``Image.open`` parses the header only (no pixel decode), ~0.1 ms a file, so the
scan of 10k files takes about a second. It answers two questions the model needs before any
image is decoded: the default ``image_size`` (the files' side when they all share one) and
the channel count (1 when every file is grayscale, else 3). An unreadable header is left for
the cache pass, which names the file.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")  # image_dataset_from_directory's
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
SAMPLE = 256  # files scanned for channels when the size is given


@dataclasses.dataclass(frozen=True)
class Scan:
    side: int | None  # common square side, None when sizes vary (or images are not square)
    channels: int  # 1 when every scanned file is grayscale, else 3


def scan(paths, *, need_size: bool) -> Scan:
    """Headers of all `paths` (or of the first `SAMPLE` when the size is not needed)."""
    shown = paths if need_size else paths[:SAMPLE]
    sizes, gray = set(), True
    for path in shown:
        try:
            with Image.open(path) as image:
                sizes.add(image.size)
                gray = gray and image.mode in GRAY_MODES
        except (OSError, UnidentifiedImageError, ValueError):
            continue
    side = None
    if len(sizes) == 1:
        width, height = next(iter(sizes))
        side = width if width == height else None
    return Scan(side, 1 if gray and sizes else 3)


def as_array(paths) -> np.ndarray:
    return np.asarray([str(p) for p in paths], dtype=object)
