"""The field's protocols by name: their splits have the published class and image counts.

Nothing can be downloaded here, so the TFDS protocols run under `tfds.testing.mock_data`
(random records with the real label spaces) and the counts are checked on label arrays with
the real per-class counts; ImageNet-LT runs through a list the test writes."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds
from written import mnist, tfds_records, write_png_folder

from training.data import DataError, load_splits, prepare_splits
from training.data.catalog import PROTOCOLS
from training.data.images import TfdsImages
from training.data.source import Source
from training.data.splits import _classification, _retrieval


def _lazy(n: int) -> TfdsImages:
    """A collection that is never read: splitting works on labels alone."""
    return TfdsImages("none", "train", None, "image", np.arange(n, dtype=np.int64))


def test_cifar_lt_protocols_have_cao_et_al_training_sizes():
    for name, classes, per_class, published in (("cifar10_lt", 10, 5000, 12406),
                                                ("cifar100_lt", 100, 500, 10847)):
        y = np.repeat(np.arange(classes), per_class).astype(np.int32)
        test_y = np.repeat(np.arange(classes), 1000 if classes == 10 else 100).astype(np.int32)
        src = Source(_lazy(len(y)), y, _lazy(len(test_y)), test_y,
                     tuple(map(str, range(classes))), long_tail=PROTOCOLS[name].long_tail)
        splits = _classification(src, name, 0, 0.1, 1.0)
        counts = np.bincount(splits.y_train, minlength=classes)
        assert counts.sum() == published, name
        assert counts[0] == per_class and counts[-1] == per_class // 100
        # val comes from the images the profile left out: disjoint from train.
        train_pos = splits.x_train.positions
        assert not set(train_pos) & set(splits.x_val.positions)
        assert np.bincount(splits.y_test).tolist() == np.bincount(test_y).tolist()  # balanced


@pytest.mark.parametrize("name,classes,train_classes,pooled", [
    ("cub200", 200, 100, True), ("cars196", 196, 98, True), ("sop", 22634, 11318, False)])
def test_retrieval_protocols_split_the_classes_as_published(name, classes, train_classes, pooled):
    rng = np.random.default_rng(0)
    # 2 to 12 images a class, as SOP (CUB and Cars have ~60; the split rule is the same).
    y = np.repeat(np.arange(classes), rng.integers(2, 13, classes)).astype(np.int32)
    entry = PROTOCOLS[name]
    if pooled:  # CUB/Cars: train and test images of a class all go to its side
        src = Source(_lazy(len(y)), y, _lazy(len(y)), y, tuple(map(str, range(classes))),
                     test_is_pool=True, train_classes=entry.train_classes)
    else:  # SOP ships class-disjoint train/test splits
        train = y[y < train_classes]
        src = Source(_lazy(len(train)), train, _lazy(len(y)), y,
                     tuple(map(str, range(classes))), train_classes=entry.train_classes)
    splits = _retrieval(src, name, 0, 0.1, 1.0)
    seen = set(splits.y_train) | set(splits.y_val)
    assert seen == set(range(train_classes))
    assert set(splits.y_test) == set(range(train_classes, classes))
    assert len(set(splits.y_test)) == classes - train_classes  # 100, 98, 11,316


@pytest.mark.parametrize("name", ["cub200", "cars196"])
def test_tfds_retrieval_protocols_under_mock_data(name):
    classes = 200 if name == "cub200" else 196
    with tfds.testing.mock_data(as_dataset_fn=tfds_records(4 * classes, classes)):
        splits = load_splits(name, "retrieval", seed=0)
        assert splits.num_classes == PROTOCOLS[name].train_classes
        assert splits.y_test.min() >= splits.num_classes > splits.y_train.max()
        ready = prepare_splits(splits, policy="resized_crop", image_size=32, cache="memory",
                               cache_budget=0.25, cache_folder=None, skip_bad_images=False)
    assert ready.input_shape == (32, 32, 3)
    assert ready.x_train.stored == 37  # ⌈32·256/224⌉: the test view crops 32 from it
    assert np.asarray(ready.x_test[:4]).shape == (4, 32, 32, 3)


def test_cifar10_lt_under_mock_data_is_long_tailed():
    with tfds.testing.mock_data(num_examples=2000, policy=tfds.testing.MockPolicy.USE_CODE):
        splits = load_splits("cifar10_lt", "classification", seed=0)
    counts = np.bincount(splits.y_train, minlength=10)
    assert counts[0] == counts.max() and counts[-1] < counts[0] / 20


def test_protocol_for_the_wrong_task_or_with_imbalance_is_refused():
    with pytest.raises(DataError, match="cub200 is a retrieval protocol"):
        load_splits("cub200", "classification", seed=0)
    y = np.repeat(np.arange(10), 100).astype(np.int32)
    src = Source(_lazy(1000), y, _lazy(1000), y, tuple("0123456789"), long_tail=100.0)
    with pytest.raises(DataError, match="already long-tailed at IR 100"):
        _classification(src, "cifar10_lt", 0, 0.1, 10.0)


def test_imagenet_lt_reads_the_official_lists_from_data_root(tmp_path):
    """1,000 classes with the published extremes (1,280 and 5 images), lines pointing at a few
    real digit files: the list format, not the pixels, is what this protocol adds."""
    x, y = mnist(10)
    write_png_folder(tmp_path / "train", x, y)
    files = sorted((tmp_path / "train").rglob("*.png"))
    # 1,280 down to 5 a class, 115.7k lines in all (the published 115.8k).
    per_class = np.maximum(5, (1280 * np.linspace(1, 0, 1000) ** 10).astype(int))
    per_class[0] = 1280
    lines = [f"{files[i % len(files)].relative_to(tmp_path).as_posix()} {c}"
             for c, n in enumerate(per_class) for i in range(n)]
    (tmp_path / "ImageNet_LT_train.txt").write_text("\n".join(lines) + "\n")
    test_lines = [f"{files[c % len(files)].relative_to(tmp_path).as_posix()} {c}"
                  for c in range(1000)]
    (tmp_path / "ImageNet_LT_test.txt").write_text("\n".join(test_lines) + "\n")
    splits = load_splits("imagenet_lt", "classification", seed=0, data_root=str(tmp_path),
                         image_size=28)
    counts = np.bincount(splits.y_train, minlength=1000) + np.bincount(splits.y_val,
                                                                        minlength=1000)
    assert splits.num_classes == 1000
    np.testing.assert_array_equal(counts, per_class)
    assert len(splits.y_test) == 1000
    with pytest.raises(DataError, match="imagenet_lt needs data_root"):
        load_splits("imagenet_lt", "classification", seed=0)
