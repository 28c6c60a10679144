"""Read MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST ship this way).

Format (http://yann.lecun.com/exdb/mnist/): a 4-byte big-endian magic number, two zero
bytes then a type code (0x08 = unsigned byte) and the number of dimensions; then one
big-endian uint32 per dimension; then the values, row-major. Images are magic 0x00000803
(N, H, W), labels 0x00000801 (N,).

File names: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-…`` (or
``test-…``), optionally ``.gz``, optionally with a dot before ``idx`` as some mirrors ship
(``train-images.idx3-ubyte``) and optionally with a prefix (``emnist-digits-train-…``).
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from training.data.images import ArrayImages
from training.data.source import Source, check_labels
from training.errors import DataError

IMAGES_MAGIC = 0x00000803  # ubyte, 3 dims
LABELS_MAGIC = 0x00000801  # ubyte, 1 dim

# split -> accepted spellings of the split in file names.
_SPLIT_WORDS = {"train": ("train",), "test": ("t10k", "test")}
_NAME = re.compile(
    r"^(?:.*-)?(?P<split>train|t10k|test)-(?P<kind>images|labels)"
    r"[.-]idx(?P<ndim>[13])-ubyte(?:\.gz)?$"
)
EXPECTED_NAMES = "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-…"


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one IDX file (raw or gzip) and check its header.

    Args:
        path: the file.
        magic: the expected magic number, ``IMAGES_MAGIC`` or ``LABELS_MAGIC``.

    Returns:
        uint8 array of shape (N, H, W) for images, (N,) for labels.

    Raises:
        DataError: unreadable / corrupt gzip, wrong magic number, truncated or oversized data.
    """
    try:
        # Whole file in memory: MNIST train images are 47 MB raw, the largest we expect.
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"IDX file {path} is corrupt or unreadable: {err}") from err
    if len(raw) < 4:
        raise DataError(f"IDX file {path} is truncated: {len(raw)} bytes, no header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(
            f"IDX file {path} has magic number 0x{found:08X}, expected 0x{magic:08X} "
            f"(0x{IMAGES_MAGIC:08X} = images, 0x{LABELS_MAGIC:08X} = labels)"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated inside its header ({len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64))
    got = len(raw) - header
    if got != expected:
        state = "truncated" if got < expected else "corrupt (trailing bytes)"
        raise DataError(
            f"IDX file {path} is {state}: header says {dims} = {expected} values, file holds {got}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def find_idx_files(folder: Path) -> dict[str, tuple[Path, Path]]:
    """Map each split found in ``folder`` ("train", "test") to its (images, labels) paths.

    Raises:
        DataError: folder missing, or no complete images+labels pair in it, or two files
            claiming the same role (e.g. two EMNIST variants in one folder).
    """
    if not folder.is_dir():
        raise DataError(
            f"idx: folder {folder} does not exist (expected a folder with {EXPECTED_NAMES})"
        )
    roles: dict[tuple[str, str], Path] = {}
    for path in sorted(folder.iterdir()):
        match = _NAME.match(path.name)
        if match is None or not path.is_file():
            continue
        split = next(s for s, words in _SPLIT_WORDS.items() if match["split"] in words)
        kind = match["kind"]
        if (kind == "images") != (match["ndim"] == "3"):
            continue  # e.g. "train-images-idx1-ubyte": not a name any mirror uses
        if (split, kind) in roles:
            raise DataError(
                f"idx: folder {folder} has two {split} {kind} files: "
                f"{roles[split, kind].name} and {path.name}; keep one dataset per folder"
            )
        roles[split, kind] = path
    pairs = {
        split: (roles[split, "images"], roles[split, "labels"])
        for split in _SPLIT_WORDS
        if (split, "images") in roles and (split, "labels") in roles
    }
    if not pairs:
        present = ", ".join(p.name for p in roles.values()) or "no IDX files"
        raise DataError(
            f"idx: folder {folder} has no complete IDX images+labels pair (found: {present}); "
            f"expected {EXPECTED_NAMES}"
        )
    return pairs


def read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one images+labels pair: uint8 (N, H, W) and uint8 (N,), counts checked."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataError(
            f"idx: {images_path.name} holds {len(images)} images but {labels_path.name} "
            f"holds {len(labels)} labels; they must have the same count"
        )
    return images, labels


def load_idx_folder(folder: str) -> Source:
    """``idx:PATH``: train pair and/or t10k pair, kept as uint8 in RAM (÷255 in tf.data);
    classes = distinct training labels. Without a train pair the t10k pair is the whole pool
    (the caller holds out a test split)."""
    pairs = find_idx_files(Path(folder).expanduser())
    train_key = "train" if "train" in pairs else "test"
    images, labels = read_pair(*pairs[train_key])
    num_classes = len(np.unique(labels))
    y_train = check_labels(labels, num_classes, f"idx:{folder} ({pairs[train_key][1].name})")
    x_test = y_test = None
    if train_key == "train" and "test" in pairs:
        test_images, test_labels = read_pair(*pairs["test"])
        if test_images.shape[1:] != images.shape[1:]:
            raise DataError(
                f"idx:{folder}: test images are {test_images.shape[1:]}, train images "
                f"{images.shape[1:]}; both splits must have the same image size"
            )
        x_test = ArrayImages(test_images[..., None])
        where = f"idx:{folder} ({pairs['test'][1].name})"
        y_test = check_labels(test_labels, num_classes, where)
    names = tuple(str(c) for c in range(num_classes))
    return Source(ArrayImages(images[..., None]), y_train, x_test, y_test, names)
