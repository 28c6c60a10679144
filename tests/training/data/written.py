"""Real images written to disk for the data tests: MNIST t10k (../shared/datasets) as PNG
folders, IDX files and list files, and variable-size RGB JPEGs made from the same digits."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from training.data.idx import find_idx_files, read_pair

MNIST = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "mnist-t10k"


def mnist(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` real MNIST t10k images (uint8 (n, 28, 28)) and labels, in file order."""
    images, labels = read_pair(*find_idx_files(MNIST)["test"])
    return images[:n], labels[:n].astype(np.int64)


def class_major(labels: np.ndarray) -> np.ndarray:
    """The order a `folder:` source lists files: by class, then by file name (= index)."""
    return np.lexsort((np.arange(len(labels)), labels))


def write_png_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """root/<class>/<index:05d>.png, lossless grayscale."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{i:05d}.png")
    return root


def write_idx(root: Path, images: np.ndarray, labels: np.ndarray, split: str = "t10k") -> Path:
    """An IDX pair (gzip) as MNIST ships it."""
    root.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    with gzip.open(root / f"{split}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, h, w) + images.astype(np.uint8).tobytes())
    with gzip.open(root / f"{split}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes())
    return root


def rgb_variants(images: np.ndarray, seed: int = 0) -> list[Image.Image]:
    """Each digit tinted into RGB and resized to a random size in 20..60 px (not square)."""
    rng = np.random.default_rng(seed)
    out = []
    for image in images:
        tint = rng.uniform(0.3, 1.0, size=3)
        rgb = (image[..., None] * tint).astype(np.uint8)
        size = tuple(int(s) for s in rng.integers(20, 61, size=2))
        out.append(Image.fromarray(rgb, mode="RGB").resize(size, Image.BILINEAR))
    return out


def write_rgb_folder(root: Path, images, labels, suffixes=(".jpg", ".png", ".bmp", ".gif")):
    """Variable-size RGB files, the suffixes taken in turn; one in five saved grayscale."""
    paths = []
    for i, (image, label) in enumerate(zip(rgb_variants(images), labels, strict=True)):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:05d}{suffixes[i % len(suffixes)]}"
        (image.convert("L") if i % 5 == 0 else image).save(path)
        paths.append(path)
    return paths


def write_list(path: Path, root: Path, paths, labels) -> Path:
    """`relative/path.jpg <label>` lines, as ImageNet_LT_train.txt."""
    lines = [f"{Path(p).relative_to(root).as_posix()} {int(y)}" for p, y in zip(paths, labels,
                                                                              strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def encoded(image: Image.Image, fmt: str = "JPEG") -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def tfds_records(n: int, classes: int, seed: int = 0):
    """`as_dataset_fn` for `tfds.testing.mock_data`: real digits as variable-size RGB JPEG
    records (images left encoded, as SkipDecoding returns them), labels cycling through
    `classes` so every class has images. Works for any builder whose supervised keys are
    (image, label-like): the keys are read from the builder's info."""
    import tensorflow as tf

    x, _ = mnist(n)
    images = [encoded(im) for im in rgb_variants(x, seed)]

    def as_dataset(self, split=None, decoders=None, **kwargs):
        image_key, label_key = self.info.supervised_keys
        labels = [(i * 7919 + len(str(split))) % classes for i in range(n)]
        return tf.data.Dataset.from_tensor_slices(
            {image_key: tf.constant(images), label_key: tf.constant(labels, tf.int64)})

    return as_dataset
