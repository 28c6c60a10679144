"""Splits: sizes, stratification, determinism, long-tail profile, retrieval class halves."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from training.data import DataError, load_splits, long_tail_counts

DIGITS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # sklearn digits, per class


def long_tail_reference(counts, ir):
    """n_c = min(count_c, floor(n_max * IR^(-c/(C-1)))), one class at a time."""
    n_max, num = max(counts), len(counts)
    out = []
    for c, count in enumerate(counts):
        exact = n_max * ir ** (-c / (num - 1)) if num > 1 else n_max
        out.append(min(count, math.floor(round(exact, 9))))
    return out


# --- long_tail_counts --------------------------------------------------------------------


def test_long_tail_hand_values():
    assert long_tail_counts([100, 100, 100], 100).tolist() == [100, 10, 1]
    assert long_tail_counts([1000] * 5, 10).tolist() == [1000, 562, 316, 177, 100]
    assert long_tail_counts([5, 7, 3], 1).tolist() == [5, 7, 3]  # IR = 1 keeps everything


@pytest.mark.parametrize("num,ir", [(2, 3.0), (10, 100.0), (7, 2.5), (100, 50.0)])
def test_long_tail_matches_loop_reference(num, ir):
    counts = list(np.random.default_rng(num).integers(50, 500, size=num))
    assert long_tail_counts(counts, ir).tolist() == long_tail_reference(counts, ir)


@pytest.mark.parametrize("ir", [0.5, 0.0, -2.0, float("nan"), float("inf")])
def test_long_tail_rejects_bad_ratio(ir):
    with pytest.raises(DataError, match="imbalance must be a finite ratio >= 1"):
        long_tail_counts([10, 10], ir)


# --- classification splits ---------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits", "classification", seed=0)


def test_digits_sizes_types_and_ranges(digits):
    assert (len(digits.y_train), len(digits.y_val), len(digits.y_test)) == (1293, 144, 360)
    for x, y in [
        (digits.x_train, digits.y_train),
        (digits.x_val, digits.y_val),
        (digits.x_test, digits.y_test),
    ]:
        x = np.asarray(x)  # the split's images, read as the model sees them
        assert x.dtype == np.float32 and x.shape[1:] == (8, 8, 1)
        assert y.dtype == np.int32 and set(np.unique(y)) == set(range(10))
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert np.asarray(digits.x_train).max() == 1.0  # 16/16: scaled, not left in 0..16
    assert digits.num_classes == 10 and digits.task == "classification"
    assert digits.test_label_offset == 0


def test_digits_splits_are_stratified_and_cover_the_data(digits):
    total = digits.class_counts("train") + digits.class_counts("val") + digits.class_counts("test")
    assert total.tolist() == DIGITS_COUNTS
    test_share = digits.class_counts("test") / np.array(DIGITS_COUNTS)
    assert np.all(np.abs(test_share - 0.2) < 0.01)
    pool = np.array(DIGITS_COUNTS) - digits.class_counts("test")
    assert np.all(np.abs(digits.class_counts("val") - 0.1 * pool) <= 1)


def test_same_seed_same_splits_other_seed_other_splits(digits):
    again = load_splits("digits", "classification", seed=0)
    np.testing.assert_array_equal(again.x_train, digits.x_train)
    np.testing.assert_array_equal(again.y_test, digits.y_test)
    other = load_splits("digits", "classification", seed=1)
    assert not np.array_equal(other.x_test, digits.x_test)


def test_sizes_and_counts(digits):
    assert len(digits.y_train) == 1293 and len(digits.y_test) == 360
    assert digits.class_counts("val").tolist() == np.bincount(digits.y_val, minlength=10).tolist()
    assert digits.x_train.shape[1:] == (8, 8, 1)


def test_imbalance_follows_profile_and_keeps_test(digits):
    lt = load_splits("digits", "classification", seed=0, imbalance=10)
    balanced_train = digits.class_counts("train")
    assert lt.class_counts("train").tolist() == long_tail_reference(balanced_train.tolist(), 10)
    assert lt.class_counts("train")[0] == balanced_train[0]  # class 0 is the head
    val_ref = long_tail_reference(digits.class_counts("val").tolist(), 10)
    assert lt.class_counts("val").tolist() == [max(v, 1) for v in val_ref]
    np.testing.assert_array_equal(lt.x_test, digits.x_test)  # test untouched
    np.testing.assert_array_equal(lt.y_test, digits.y_test)
    # A subset of the balanced training images, not new ones.
    rows = {row.tobytes() for row in digits.x_train}
    assert all(row.tobytes() in rows for row in lt.x_train)


def test_imbalance_leaving_an_empty_class_is_an_error(digits):
    # Head class has 131 training images: class 6 keeps floor(131 * 1000^(-6/9)) = 1,
    # class 7 keeps floor(131 * 1000^(-7/9)) = floor(0.61) = 0.
    assert digits.class_counts("train").max() == 131
    with pytest.raises(DataError, match=r"imbalance=1000 leaves class 7 \('7'\) with 0 training"):
        load_splits("digits", "classification", seed=0, imbalance=1000)
    load_splits("digits", "classification", seed=0, imbalance=131)  # the suggested limit works


# --- retrieval ----------------------------------------------------------------------------


def test_retrieval_trains_on_first_half_and_tests_on_held_out_classes():
    splits = load_splits("digits", "retrieval", seed=0)
    assert splits.num_classes == 5 and splits.task == "retrieval"
    assert set(np.unique(splits.y_train)) == set(range(5))
    assert set(np.unique(splits.y_val)) == set(range(5))
    assert set(np.unique(splits.y_test)) == set(range(5, 10))  # original labels kept
    assert len(splits.class_names) == 10
    # The test images are the classification test split restricted to classes 5-9.
    clf = load_splits("digits", "classification", seed=0)
    np.testing.assert_array_equal(splits.x_test, clf.x_test[clf.y_test >= 5])


def test_retrieval_needs_four_classes(tmp_path):
    # A 3-class IDX folder, encoded by hand (magic 0x0000080N, big-endian dims, bytes).
    images = np.zeros((30, 8, 8), np.uint8)
    labels = (np.arange(30) % 3).astype(np.uint8)
    for name, arr in [("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)]:
        dims = struct.pack(f">{arr.ndim}I", *arr.shape)
        (tmp_path / name).write_bytes(struct.pack(">I", 0x800 | arr.ndim) + dims + arr.tobytes())
    with pytest.raises(DataError, match="retrieval needs at least 4 classes.*has 3"):
        load_splits(f"idx:{tmp_path}", "retrieval", seed=0)


# --- argument errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"task": "detection"}, "task must be one of classification, retrieval, regression; got 'detection'"),
        ({"val_fraction": 0.0}, "val_fraction must be in \\(0, 1\\), got 0.0"),
        ({"val_fraction": 1.5}, "val_fraction must be in \\(0, 1\\), got 1.5"),
        ({"imbalance": 0.5}, "imbalance must be a finite ratio >= 1"),
        ({"dataset": "idx:"}, "names no folder"),
            ({"dataset": "folder:"}, "names no folder"),
            ({"dataset": "list:"}, "names no folder or file"),
            ({"dataset": "cub_200"}, "Did you mean cub200"),
        ({"dataset": ""}, "dataset must be a non-empty name"),
        ({"dataset": "mnsit"}, "unknown dataset 'mnsit'. Did you mean mnist"),
    ],
)
def test_bad_arguments_raise_data_error(kwargs, message):
    args = {"dataset": "digits", "task": "classification", **kwargs}
    with pytest.raises(DataError, match=message):
        load_splits(args.pop("dataset"), args.pop("task"), seed=0, **args)
