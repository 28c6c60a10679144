"""Dataset sources: digits, TFDS under mock_data (no network), and TFDS failures."""

from __future__ import annotations

import numpy as np
import pytest

from training.data import DataError, available_datasets, load_splits, prepare_splits
from training.data.sources import load_digits, load_source


def test_digits_source_scales_counts_0_to_16():
    from sklearn.datasets import load_digits as sk_digits

    src = load_digits()
    raw = sk_digits().images
    assert src.x_train.shape == (1797, 8, 8, 1) and src.x_test is None
    np.testing.assert_allclose(src.x_train[..., 0], raw / 16.0, rtol=0, atol=1e-7)
    assert src.class_names == tuple("0123456789")


def test_available_datasets_names_the_offline_options():
    text = available_datasets()
    assert "digits" in text and "idx:PATH" in text and "mnist" in text


@pytest.fixture
def mock_mnist():
    import tensorflow_datasets as tfds

    # 300 random images per split: enough that every one of the 10 classes can be stratified.
    with tfds.testing.mock_data(num_examples=300, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


def test_tfds_classification_under_mock_data(mock_mnist):
    splits = load_splits("mnist", "classification", seed=0, val_fraction=0.2)
    # Streamed: labels only until the cache pass reads the records through tf.data.
    assert type(splits.x_train).__name__ == "TfdsImages"
    splits = prepare_splits(splits, policy="none", image_size=None, cache="memory",
                            cache_budget=0.25, cache_folder=None, skip_bad_images=False)
    x_train = np.asarray(splits.x_train)
    assert x_train.shape[1:] == (28, 28, 1) and x_train.dtype == np.float32
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0 and x_train.std() > 0
    assert len(splits.y_test) == 300  # the source's own test split, untouched
    assert len(splits.y_train) + len(splits.y_val) == 300
    assert splits.class_names == tuple(str(c) for c in range(10))
    assert splits.y_train.dtype == np.int32


def test_tfds_retrieval_under_mock_data(mock_mnist):
    splits = load_splits("mnist", "retrieval", seed=0, val_fraction=0.2)
    assert splits.num_classes == 5
    assert splits.y_train.max() < 5 and splits.y_test.min() >= 5


def test_tfds_honours_tfds_data_dir(monkeypatch, tmp_path):
    import tensorflow_datasets as tfds

    seen = {}

    def fake_load(name, split, data_dir, **kwargs):
        seen["data_dir"] = data_dir
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(tfds, "load", fake_load)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as info:
        load_source("fashion_mnist")
    assert seen["data_dir"] == str(tmp_path)
    message = str(info.value)
    assert "could not load TFDS dataset 'fashion_mnist'" in message
    assert "download failed" in message and "ConnectionError: network unreachable" in message
    assert "dataset=digits" in message and "idx:PATH" in message and "data_dir" in message


def test_tfds_missing_module_names_the_package(monkeypatch):
    import tensorflow_datasets as tfds

    def fake_load(name, split, data_dir, **kwargs):
        raise ModuleNotFoundError(
            "No module named 'importlib_resources'", name="importlib_resources"
        )

    monkeypatch.setattr(tfds, "load", fake_load)
    with pytest.raises(
        DataError, match="needs the Python package 'importlib_resources'.*dataset=digits"
    ):
        load_source("mnist")


def test_unknown_tfds_name_lists_choices():
    with pytest.raises(DataError, match="unknown dataset 'no_such_dataset_xyz'.*fashion_mnist"):
        load_source("no_such_dataset_xyz")


def test_tfds_dataset_that_is_not_image_classification():
    with pytest.raises(DataError, match="'imdb_reviews' is not image classification"):
        load_source("imdb_reviews")
