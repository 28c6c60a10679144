"""IDX reading: the real MNIST test split, hand-built files, and every broken-file case."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from training.data import DataError, load_splits
from training.data.idx import find_idx_files, read_pair
from training.data.sources import load_idx_folder

MNIST_T10K = (Path(__file__).resolve().parents[3] / ".." / "shared/datasets/mnist-t10k").resolve()
# Published class counts of the MNIST test set (LeCun et al.).
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written out by hand: magic 0x0000080N, big-endian dims, raw uint8."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write(folder: Path, name: str, payload: bytes) -> Path:
    path = folder / name
    path.write_bytes(gzip.compress(payload) if name.endswith(".gz") else payload)
    return path


def make_pair(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, gz=True):
    ext = ".gz" if gz else ""
    write(folder, f"{split}-images-idx3-ubyte{ext}", idx_bytes(images))
    write(folder, f"{split}-labels-idx1-ubyte{ext}", idx_bytes(labels))


def toy(n=40, classes=4, size=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % classes
    return images, labels


# --- the real file -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_pair():
    assert MNIST_T10K.is_dir(), f"shared MNIST split missing at {MNIST_T10K}"
    return read_pair(*find_idx_files(MNIST_T10K)["test"])


def test_real_mnist_t10k_matches_published_facts(mnist_pair):
    images, labels = mnist_pair
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == MNIST_TEST_COUNTS
    assert labels[0] == 7  # the first MNIST test digit is a 7
    digest = hashlib.sha256((MNIST_T10K / "t10k-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    assert digest == "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"


def test_t10k_only_folder_holds_out_stratified_20_percent_as_test():
    splits = load_splits(f"idx:{MNIST_T10K}", "classification", seed=0)
    assert len(splits.y_test) == 2000
    assert len(splits.y_train) + len(splits.y_val) == 8000
    assert len(splits.y_val) == 800
    # Stratified: each class's test share is 20 % of its count, up to rounding.
    assert np.all(np.abs(splits.class_counts("test") - 0.2 * np.array(MNIST_TEST_COUNTS)) <= 1)
    assert splits.x_train.shape[1:] == (28, 28, 1)
    assert splits.class_names == tuple(str(c) for c in range(10))


# --- hand-built files --------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_reads_hand_built_pair_raw_and_gzip(tmp_path, gz):
    images, labels = toy()
    make_pair(tmp_path, "train", images, labels, gz=gz)
    make_pair(tmp_path, "t10k", images[:12], labels[:12], gz=gz)
    src = load_idx_folder(str(tmp_path))
    np.testing.assert_array_equal(src.x_train[..., 0], images / np.float32(255))
    assert src.x_train.dtype == np.float32 and src.x_train.shape == (40, 8, 8, 1)
    np.testing.assert_array_equal(src.y_train, labels)
    np.testing.assert_array_equal(src.y_test, labels[:12])


def test_accepts_dotted_mirror_names(tmp_path):
    images, labels = toy()
    write(tmp_path, "train-images.idx3-ubyte", idx_bytes(images))
    write(tmp_path, "train-labels.idx1-ubyte", idx_bytes(labels))
    src = load_idx_folder(str(tmp_path))
    assert src.x_train.shape == (40, 8, 8, 1) and src.x_test is None


# --- every broken case → DataError naming the file / value --------------------------------


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_splits(f"idx:{tmp_path / 'nope'}", "classification", seed=0)


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no complete IDX images\\+labels pair.*expected"):
        load_splits(f"idx:{tmp_path}", "classification", seed=0)


def test_images_without_labels(tmp_path):
    images, _ = toy()
    write(tmp_path, "train-images-idx3-ubyte.gz", idx_bytes(images))
    with pytest.raises(DataError, match="found: train-images-idx3-ubyte.gz"):
        load_idx_folder(str(tmp_path))


def test_corrupt_gzip(tmp_path):
    images, labels = toy()
    make_pair(tmp_path, "train", images, labels)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:50])  # cut inside the compressed stream
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is corrupt or unreadable"):
        load_idx_folder(str(tmp_path))


def test_truncated_data(tmp_path):
    images, labels = toy()
    make_pair(tmp_path, "train", images, labels, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(
        DataError, match=r"truncated: header says \(40, 8, 8\) = 2560 values, file holds 2553"
    ):
        load_idx_folder(str(tmp_path))


def test_truncated_header(tmp_path):
    images, labels = toy()
    make_pair(tmp_path, "train", images, labels, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(images)[:9])
    with pytest.raises(DataError, match="truncated inside its header"):
        load_idx_folder(str(tmp_path))


def test_wrong_magic(tmp_path):
    images, labels = toy()
    make_pair(tmp_path, "train", images, labels)
    # Images where labels belong: magic 0x00000803 instead of 0x00000801.
    write(tmp_path, "train-labels-idx1-ubyte.gz", idx_bytes(images))
    with pytest.raises(DataError, match="magic number 0x00000803, expected 0x00000801"):
        load_idx_folder(str(tmp_path))


def test_image_label_count_mismatch(tmp_path):
    images, labels = toy()
    make_pair(tmp_path, "train", images, labels[:-3])
    with pytest.raises(DataError, match="holds 40 images but .* holds 37 labels"):
        load_idx_folder(str(tmp_path))


def test_labels_outside_class_range(tmp_path):
    images, labels = toy()
    labels = labels.copy()
    labels[5] = 200  # 5 distinct values {0, 1, 2, 3, 200}: range is [0, 5)
    make_pair(tmp_path, "train", images, labels)
    with pytest.raises(DataError, match=r"label\(s\) 200 outside the class range \[0, 5\)"):
        load_splits(f"idx:{tmp_path}", "classification", seed=0)


def test_test_labels_outside_training_classes(tmp_path):
    images, labels = toy()
    make_pair(tmp_path, "train", images, labels)
    make_pair(tmp_path, "t10k", images[:4], np.array([0, 1, 2, 9], np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz\): label\(s\) 9 outside"):
        load_idx_folder(str(tmp_path))


def test_two_files_for_one_role(tmp_path):
    images, labels = toy()
    make_pair(tmp_path, "train", images, labels)
    write(tmp_path, "train-images.idx3-ubyte", idx_bytes(images))
    with pytest.raises(DataError, match="two train images files"):
        load_idx_folder(str(tmp_path))
