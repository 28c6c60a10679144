"""Regression data: csv: (UTF-8 names, string columns one-hot on the training split, raw
numbers), diabetes, seeded unstratified splits, outliers= on training targets only, weights,
list: lines with float targets over real MNIST images, and your own source's float targets.
Expected values are recomputed here with loops over the written rows."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from tests.training.data.written import mnist
from training.data.splits import load_splits
from training.errors import DataError

ROWS = [  # température (°C), ville, poids, prix (the target)
    (12.5, "Paris", 1.0, 100.0), (14.0, "Lyon", 2.0, 120.0), (9.5, "Paris", 1.0, 90.0),
    (20.0, "Nice", 0.5, 150.0), (17.5, "Lyon", 1.0, 140.0), (11.0, "Paris", 3.0, 95.0),
    (22.0, "Nice", 1.0, 160.0), (15.0, "Lyon", 1.0, 125.0), (8.0, "Paris", 2.0, 80.0),
    (19.0, "Nice", 1.0, 145.0), (13.0, "Lyon", 1.0, 110.0), (16.5, "Paris", 1.0, 130.0),
]


def write_csv(path, rows=ROWS, header="température,ville,poids,prix"):
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def test_csv_features_are_raw_numbers_and_training_one_hot(tmp_path):
    path = write_csv(tmp_path / "villes.csv")
    s = load_splits(f"csv:{path}", "regression", seed=3, target="prix", weight="poids")
    cities = sorted({r[1] for r, in zip(ROWS)})
    assert s.feature_names == ("température", *(f"ville={c}" for c in cities))
    by_target = {r[3]: r for r in ROWS}  # targets are distinct: they identify rows
    for split in ("train", "val", "test"):
        x, y, w = (getattr(s, f"{k}_{split}") for k in "xyw")
        rows = x[0:len(x)]
        for features, target, weight in zip(rows, y, w, strict=True):
            temp, city, poids, _ = by_target[float(target)]
            assert features[0] == np.float32(temp) and weight == np.float32(poids)
            assert list(features[1:]) == [float(city == c) for c in cities]
    # 12 rows: test ceil(2.4) = 3, val ceil(0.9) = 1, train 8; every row once
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (8, 1, 3)
    assert sorted(np.concatenate([s.y_train, s.y_val, s.y_test])) == sorted(r[3] for r in ROWS)
    mean, variance = s.feature_stats
    temps = [by_target[float(t)][0] for t in s.y_train]
    m = sum(temps) / len(temps)
    assert mean[0] == pytest.approx(m, rel=1e-6)
    assert variance[0] == pytest.approx(sum((t - m) ** 2 for t in temps) / len(temps), rel=1e-5)
    assert list(mean[1:]) == [0.0] * 3 and list(variance[1:]) == [1.0] * 3


def test_unseen_test_category_is_a_zero_row_with_one_warning(tmp_path):
    rows = [(float(i), "a" if i % 2 else "b", 1.0, float(i)) for i in range(20)]
    rows[7] = (7.0, "zürich", 1.0, 7.0)
    path = write_csv(tmp_path / "t.csv", rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for seed in range(20):  # a seed whose training split lacks row 7
            s = load_splits(f"csv:{path}", "regression", seed=seed, target="prix")
            if 7.0 not in s.y_train:
                break
    assert "ville=zürich" not in s.feature_names
    where = "val" if 7.0 in s.y_val else "test"
    x, y = getattr(s, f"x_{where}"), getattr(s, f"y_{where}")
    row = x[0:len(x)][list(y).index(7.0)]
    # température, ville=a, ville=b, poids (no weight= column here: a feature)
    assert list(row) == [7.0, 0.0, 0.0, 1.0]
    mine = [w for w in caught if "zürich" in str(w.message)]
    assert len(mine) == 1 and f"1 {where} row(s)" in str(mine[0].message)


def test_splits_are_seeded_and_outliers_touch_training_targets_only(tmp_path):
    clean = load_splits("diabetes", "regression", seed=5)
    again = load_splits("diabetes", "regression", seed=5)
    dirty = load_splits("diabetes", "regression", seed=5, outliers=0.1)
    other = load_splits("diabetes", "regression", seed=6)
    assert np.array_equal(clean.y_train, again.y_train)
    assert not np.array_equal(clean.y_test, other.y_test)
    assert np.array_equal(clean.y_val, dirty.y_val) and np.array_equal(clean.y_test, dirty.y_test)
    changed = np.flatnonzero(clean.y_train != dirty.y_train)
    assert len(changed) == round(0.1 * len(clean.y_train)) == dirty.outlier_rows
    assert len(clean.y_train) + len(clean.y_val) + len(clean.y_test) == 442
    # raw features, as recorded: age in years, sex 1/2
    ages = clean.x_train[0:len(clean.x_train)][:, 0]
    assert ages.min() >= 18 and ages.max() <= 80
    assert set(np.unique(clean.x_train[0:len(clean.x_train)][:, 1])) == {1.0, 2.0}


def test_drop_nan_drops_and_counts(tmp_path):
    rows = list(ROWS)
    rows[2] = (float("nan"), "Paris", 1.0, 90.0)
    rows[5] = (11.0, "Paris", 3.0, float("inf"))
    path = write_csv(tmp_path / "nan.csv", rows)
    with pytest.raises(DataError, match=r"2 row\(s\) hold NaN or inf.*line 4, line 7"):
        load_splits(f"csv:{path}", "regression", seed=0, target="prix")
    s = load_splits(f"csv:{path}", "regression", seed=0, target="prix", drop_nan=True)
    assert s.dropped_rows == 2 and len(s.y_train) + len(s.y_val) + len(s.y_test) == 10


def _mnist_list(tmp_path, n=40):
    images, labels = mnist(n)
    lines = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(image, mode="L").save(tmp_path / f"d {i}.png")
        lines.append(f"d {i}.png {label + 0.25 * (i % 4):.2f}")  # a float target per image
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    return images, labels


def test_list_with_float_targets_is_image_regression(tmp_path):
    images, labels = _mnist_list(tmp_path)
    s = load_splits("list:train.txt", "regression", seed=0, data_root=str(tmp_path))
    assert s.task == "regression" and s.num_classes == 0 and s.feature_stats is None
    assert s.input_shape == (28, 28, 1)
    want = {round(float(lab + 0.25 * (i % 4)), 2) for i, lab in enumerate(labels)}
    got = np.concatenate([s.y_train, s.y_val, s.y_test]).astype(np.float64).round(2)
    assert set(got) == want and len(got) == 40
    with pytest.raises(DataError, match="regression dataset.*classification loss"):
        load_splits("list:train.txt", "classification", seed=0, data_root=str(tmp_path))


def test_a_list_of_integers_with_a_negative_one_is_regression_targets(tmp_path):
    images, labels = mnist(30)
    for i, image in enumerate(images):
        Image.fromarray(image, mode="L").save(tmp_path / f"{i}.png")
    # label − 4: integers from −4 to 5, e.g. a signed offset; no class label is negative
    (tmp_path / "train.txt").write_text("".join(f"{i}.png {int(v) - 4}\n"
                                                for i, v in enumerate(labels)))
    s = load_splits("list:train.txt", "regression", seed=0, data_root=str(tmp_path))
    got = np.sort(np.concatenate([s.y_train, s.y_val, s.y_test]).astype(np.float64))
    np.testing.assert_array_equal(got, np.sort(labels.astype(np.float64) - 4))
    with pytest.raises(DataError, match="float or negative targets, not class labels"):
        load_splits("list:train.txt", "classification", seed=0, data_root=str(tmp_path))


def float_digits():
    """Your own source: 30 real MNIST digits, target = label / 2 (floats), no classes."""
    images, labels = mnist(30)
    return (images[:24], labels[:24] / 2.0), (images[24:], labels[24:] / 2.0), None


def test_user_source_with_float_targets(tmp_path):
    module = sys.modules[__name__].__name__
    s = load_splits(f"{module}:float_digits", "regression", seed=0)
    _, labels = mnist(30)
    assert np.array_equal(s.y_test, (labels[24:] / 2.0).astype(np.float32))
    assert len(s.y_train) + len(s.y_val) == 24 and s.input_shape == (28, 28, 1)
