"""folder: and list: sources on real MNIST digits written to disk, the cache pass, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from written import mnist, write_list, write_png_folder, write_rgb_folder

from training.data import DataError, load_splits, prepare_splits
from training.data.cache import prepare
from training.data.images import View
from training.data.sources import load_source


def _prepare(splits, cache="memory", skip=False, size=None, folder=None, policy="none"):
    return prepare_splits(splits, policy=policy, image_size=size, cache=cache, cache_budget=0.25,
                          cache_folder=folder, skip_bad_images=skip)


@pytest.fixture(scope="module")
def digits60():
    x, y = mnist(60)
    return x, y


def test_folder_classes_are_sorted_subfolders_and_pixels_are_exact(tmp_path, digits60):
    x, y = digits60
    write_png_folder(tmp_path, x, y)
    (tmp_path / "notes.txt").write_text("not a class")  # a file beside the classes: ignored
    src = load_source(f"folder:{tmp_path}")
    assert src.class_names == tuple(sorted({str(v) for v in y}))  # "0".."9", Keras's order
    # Files are listed by class then name; each decodes to exactly its source pixels.
    order = np.lexsort((np.arange(len(y)), y))
    index_of = {int(name): i for i, name in enumerate(src.class_names)}
    np.testing.assert_array_equal(src.y_train, [index_of[v] for v in y[order]])
    images = src.x_train.with_view(View("none", None))
    assert images.channels == 1 and images.natural == 28
    np.testing.assert_array_equal(images[:], x[order][..., None] / np.float32(255))


def test_mixed_formats_and_modes_decode_to_rgb_at_image_size(tmp_path, digits60):
    x, y = digits60
    paths = write_rgb_folder(tmp_path, x, y)  # jpg, png, bmp, gif; some grayscale
    splits = load_splits(f"folder:{tmp_path}", "classification", seed=0, val_fraction=0.2)
    assert splits.x_train.natural is None  # sizes vary: the default side is 224
    prepared = _prepare(splits, size=24)
    assert prepared.input_shape == (24, 24, 3)
    # One GIF decoded by Pillow, resized: the same picture (mean abs error < 6 of 255).
    gif = next(p for p in paths if p.suffix == ".gif")
    src = load_source(f"folder:{tmp_path}")
    row = [str(p) for p in src.x_train.paths].index(str(gif))
    got = src.x_train.with_view(View("none", 24))[row]
    want = np.asarray(Image.open(gif).convert("RGB").resize((24, 24), Image.BILINEAR)) / 255.0
    assert np.abs(got - want).mean() < 6 / 255


def test_train_and_test_subfolders_are_the_splits(tmp_path, digits60):
    x, y = digits60
    write_png_folder(tmp_path / "train", x[:40], y[:40])
    write_png_folder(tmp_path / "test", x[40:], y[40:])
    labels = sorted({str(v) for v in y[:40]})
    for extra in set(labels) - {str(v) for v in y[40:]}:  # every class in both splits
        (tmp_path / "test" / extra).mkdir()
        Image.fromarray(x[0]).save(tmp_path / "test" / extra / "0.png")
    src = load_source(f"folder:{tmp_path}")
    assert len(src.y_train) == 40 and len(src.y_test) == 20 + len(set(labels) - {
        str(v) for v in y[40:]})


def test_train_test_class_mismatch_names_both_sides(tmp_path, digits60):
    x, y = digits60
    write_png_folder(tmp_path / "train", x[:30], y[:30])
    write_png_folder(tmp_path / "test", x[:30], y[:30])
    (tmp_path / "test" / "zebra").mkdir()
    Image.fromarray(x[0]).save(tmp_path / "test" / "zebra" / "a.png")
    with pytest.raises(DataError, match=r"only in test: \['zebra'\]"):
        load_source(f"folder:{tmp_path}")


def test_empty_class_folder_is_named(tmp_path, digits60):
    x, y = digits60
    write_png_folder(tmp_path, x[:20], y[:20])
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match="class folder 'empty_class' holds no images"):
        load_source(f"folder:{tmp_path}")


def _corrupt(folder: Path, x) -> tuple[Path, Path]:
    """A truncated JPEG and a text file named .jpg, inside class folders."""
    good = folder / "3" / "good.jpg"
    Image.fromarray(x[0]).convert("RGB").resize((64, 64)).save(good, quality=95)
    truncated = folder / "3" / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    text = folder / "7" / "notes.jpg"
    text.write_text("this is not an image")
    return truncated, text


@pytest.mark.parametrize("cache", ["memory", "disk", "none"])
def test_bad_images_are_named_or_skipped_and_counted(tmp_path, digits60, cache):
    x, y = digits60
    root = write_png_folder(tmp_path / "data", x, y)
    truncated, text = _corrupt(root, x)
    splits = load_splits(f"folder:{root}", "classification", seed=0, val_fraction=0.2)
    with pytest.raises(DataError, match=r"(truncated|notes)\.jpg cannot be read.*skip_bad_images"):
        _prepare(splits, cache=cache, size=28, folder=tmp_path / "cache")
    skipped = _prepare(splits, cache=cache, skip=True, size=28, folder=tmp_path / "cache2")
    assert skipped.skipped_count == 2
    assert sorted(Path(p).name for p in skipped.skipped) == ["notes.jpg", "truncated.jpg"]
    total = len(skipped.y_train) + len(skipped.y_val) + len(skipped.y_test)
    assert total == len(y) + 1  # 60 digits + the good JPEG
    assert len(skipped.x_train) == len(skipped.y_train)


def test_memory_disk_and_no_cache_give_the_same_images(tmp_path, digits60):
    x, y = digits60
    root = write_rgb_folder(tmp_path / "data", x, y) and tmp_path / "data"
    splits = load_splits(f"folder:{root}", "classification", seed=1, val_fraction=0.2)
    reads = {}
    for cache in ("memory", "disk", "none"):
        done = _prepare(splits, cache=cache, size=20, folder=tmp_path / "cache")
        assert done.cache == cache
        reads[cache] = (np.asarray(done.x_train), np.asarray(done.x_test))
    for cache in ("disk", "none"):
        for got, want in zip(reads[cache], reads["memory"], strict=True):
            np.testing.assert_array_equal(got, want)
    # The disk cache is a file under the folder, reused by the next run.
    files = sorted(p.suffix for p in (tmp_path / "cache").iterdir())
    assert files.count(".u8") == 3 and files.count(".json") == 3
    again = prepare(splits.x_train.with_view(View("none", 20)), "disk", tmp_path / "cache")
    np.testing.assert_array_equal(np.asarray(again.images), reads["disk"][0])


def test_auto_cache_goes_to_disk_over_the_budget(tmp_path, digits60):
    x, y = digits60
    root = write_png_folder(tmp_path / "data", x, y)
    splits = load_splits(f"folder:{root}", "classification", seed=0, val_fraction=0.2)
    assert _prepare(splits, cache="auto").cache == "memory"
    tiny_budget = prepare_splits(splits, policy="none", image_size=None, cache="auto",
                                 cache_budget=1e-12, cache_folder=tmp_path / "c",
                                 skip_bad_images=False)
    assert tiny_budget.cache == "disk"


# --- list: ---------------------------------------------------------------------------------


@pytest.fixture
def listed(tmp_path, digits60):
    x, y = digits60
    root = tmp_path / "imagenet"
    paths = write_rgb_folder(root / "train dir", x, y, suffixes=(".jpg",))  # a space in a path
    return root, paths, y


def test_list_official_format_with_spaces_and_a_list_in_data_root(listed):
    root, paths, y = listed
    write_list(root / "ImageNet_LT_train.txt", root, paths[:40], y[:40])
    write_list(root / "ImageNet_LT_test.txt", root, paths[40:], y[40:])
    src = load_source("list:ImageNet_LT_train.txt,ImageNet_LT_test.txt", data_root=str(root))
    np.testing.assert_array_equal(src.y_train, y[:40])
    np.testing.assert_array_equal(src.y_test, y[40:])
    assert [Path(p) for p in src.x_train.paths] == [p.resolve() for p in paths[:40]]


@pytest.mark.parametrize("line,message", [
    ("missing/file.jpg 3", r"train\.txt:2: image 'missing/file\.jpg' not found under data_root"),
    ("{first} three", r"train\.txt:2: label 'three' is not an integer"),
    ("../escape.jpg 1", r"train\.txt:2: path '\.\./escape\.jpg' leaves data_root"),
    ("/etc/hostname 1", r"train\.txt:2: path '/etc/hostname' is absolute"),
    ("lonelytoken", r"train\.txt:2: expected 'relative/path\.jpg <label>'"),
])
def test_bad_list_lines_name_file_line_and_value(listed, line, message):
    root, paths, y = listed
    (root.parent / "escape.jpg").write_bytes((paths[0]).read_bytes())
    first = paths[0].relative_to(root).as_posix()
    good = f"{first} 9\n"
    (root / "train.txt").write_text(good + line.format(first=first) + "\n")
    with pytest.raises(DataError, match=message):
        load_source("list:train.txt", data_root=str(root))


def test_a_negative_label_makes_the_list_regression_targets_named_to_a_classifier(listed):
    root, paths, y = listed
    write_list(root / "train.txt", root, paths[:12], [0, 1, 2, 1, 0, 2, 1, -1, 0, 1, 2, 0])
    src = load_source("list:train.txt", data_root=str(root))
    assert src.task == "regression" and src.y_train.dtype == np.float64
    with pytest.raises(DataError, match=r"regression dataset \(float or negative targets, not "
                                        r"class labels 0\.\.C-1\).*\(e\.g\. the target -1 of "
                                        r"training entry 8\)"):
        load_splits("list:train.txt", "classification", seed=0, data_root=str(root))


def test_test_label_outside_training_classes_is_out_of_range(listed):
    root, paths, y = listed
    write_list(root / "train.txt", root, paths[:5], [0, 1, 2, 1, 0])
    write_list(root / "test.txt", root, paths[5:7], [1, 5])
    for task in ("classification", "retrieval"):
        with pytest.raises(DataError, match=r"test\.txt: label 5 \(entry 2\) is out of range; "
                                            r"valid labels: 0\.\.2"):
            load_splits("list:train.txt,test.txt", task, seed=0, data_root=str(root))
    # a regression loss reads the integers as values: 5 is a fine test target
    s = load_splits("list:train.txt,test.txt", "regression", seed=0, data_root=str(root))
    assert sorted(s.y_test.tolist()) == [1.0, 5.0]


def test_list_needs_data_root_and_existing_files(tmp_path):
    with pytest.raises(DataError, match="needs data_root=FOLDER"):
        load_source("list:train.txt")
    with pytest.raises(DataError, match="no such list file"):
        load_source("list:nope.txt", data_root=str(tmp_path))


def test_training_batches_are_the_same_from_files_and_from_the_cache(tmp_path, digits60):
    """cache=none decodes per image in a parallel map; memory gathers whole batches: the
    batches, crops and flips of two epochs are the same, because every random op is seeded
    by (seed, epoch, index) alone."""
    from training.data import classification_dataset

    x, y = digits60
    root = tmp_path / "data"
    write_rgb_folder(root, x, y)
    splits = load_splits(f"folder:{root}", "classification", seed=0, val_fraction=0.2)
    batches = {}
    for cache in ("none", "memory"):
        done = _prepare(splits, cache=cache, size=16, policy="crop_flip")
        ds = classification_dataset(done.x_train, done.y_train, 16, seed=7, initial_epoch=1)
        steps = -(-len(done.y_train) // 16)
        batches[cache] = [(np.asarray(a), np.asarray(b)) for a, b in ds.take(2 * steps)]
    assert len(batches["none"]) == len(batches["memory"])
    for (xa, ya), (xb, yb) in zip(batches["none"], batches["memory"], strict=True):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_allclose(xa, xb, rtol=0, atol=1e-6)
    assert len(batches["none"][-1][1]) < 16 or len(y) % 16 == 0  # epoch ends on a short batch
