"""Streamed data through the real trainer: `folder:` PNGs equal `idx:` bit for bit, an
interrupted `folder:` run resumes exactly, variable-size RGB trains through `folder:`,
`list:` and TFDS, and every bad-data case exits 2 with nothing left RUNNING."""

from __future__ import annotations

import mlflow
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from written import (
    class_major,
    mnist,
    tfds_records,
    write_idx,
    write_list,
    write_png_folder,
    write_rgb_folder,
)

from training.cli import run_cli
from training.config import Config
from training.run.callbacks import MlflowLogger
from training.train import train

pytestmark = pytest.mark.slow
SKIP = ("run_id", "experiment_id", "wall_seconds")


def _metrics(result):
    return {k: v for k, v in result.items() if k not in SKIP}


def _history(run_id, key):
    return [m.value for m in sorted(mlflow.MlflowClient().get_metric_history(run_id, key),
                                    key=lambda m: m.step)]


def test_png_folder_and_idx_of_the_same_images_give_identical_metrics(tmp_path, mlflow_store):
    """PNG is lossless: the same MNIST images in the same order, as a class folder and as IDX
    files, give the same splits, batches and pixels, hence the same numbers to the last bit."""
    x, y = mnist(400)
    order = class_major(y)
    write_png_folder(tmp_path / "png", x[order], y[order])
    write_idx(tmp_path / "idx", x[order], y[order])
    common = dict(epochs=2, batch_size=32, seed=3, checkpoint_dir=str(tmp_path / "ck"))
    folder = train(Config(dataset=f"folder:{tmp_path / 'png'}", cache="memory", **common))
    idx = train(Config(dataset=f"idx:{tmp_path / 'idx'}", **common))
    assert _metrics(folder) == _metrics(idx)
    assert len(_metrics(folder)) >= 5
    for key in ("train/loss", "val/loss", "val/balanced_accuracy"):
        assert _history(folder["run_id"], key) == _history(idx["run_id"], key), key


def test_interrupted_folder_run_with_crop_flip_and_disk_cache_resumes_exactly(
        tmp_path, mlflow_store, monkeypatch):
    x, y = mnist(240)
    write_rgb_folder(tmp_path / "rgb", x, y)
    config = Config(dataset=f"folder:{tmp_path / 'rgb'}", image_size=16, augment="crop_flip",
                    cache="disk", epochs=2, batch_size=32, seed=1,
                    checkpoint_dir=str(tmp_path / "ck"))
    reference = train(config)
    assert list((tmp_path / "ck" / "cache").glob("*.u8"))  # the disk cache was used

    original = MlflowLogger.on_epoch_end

    def stop_after_first(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt
        original(self, epoch, logs)

    with monkeypatch.context() as patch:
        patch.setattr(MlflowLogger, "on_epoch_end", stop_after_first)
        with pytest.raises(KeyboardInterrupt) as caught:
            train(config)
    resumed = train(config.replace(resume=caught.value.losslab_run_id))
    assert _metrics(resumed) == _metrics(reference)
    assert _history(resumed["run_id"], "train/loss") == _history(reference["run_id"],
                                                                 "train/loss")


def test_variable_size_rgb_trains_through_list_and_tfds(tmp_path, mlflow_store):
    x, y = mnist(200)
    root = tmp_path / "images"
    paths = write_rgb_folder(root / "all", x, y, suffixes=(".jpg", ".png"))
    write_list(root / "train.txt", root, paths[:160], y[:160])
    write_list(root / "test.txt", root, paths[160:], y[160:])
    common = dict(epochs=1, batch_size=32, image_size=16, checkpoint_dir=str(tmp_path / "ck"))
    listed = train(Config(dataset="list:train.txt,test.txt", data_root=str(root), **common))
    run = mlflow.MlflowClient().get_run(listed["run_id"])
    assert run.data.params["data.image_size"] == "16" and run.data.params["data.channels"] == "3"
    assert 0 <= listed["accuracy"] <= 1
    # cats_vs_dogs: a real TFDS builder with variable-size images, records from real digits.
    with tfds.testing.mock_data(as_dataset_fn=tfds_records(80, 2)):
        streamed = train(Config(dataset="cats_vs_dogs", **common))
    assert 0 <= streamed["accuracy"] <= 1
    params = mlflow.MlflowClient().get_run(streamed["run_id"]).data.params
    assert params["data.cache"] == "memory" and params["data.image_size"] == "16"


def test_skip_bad_images_logs_the_count_and_paths(tmp_path, mlflow_store):
    x, y = mnist(120)
    root = write_png_folder(tmp_path / "png", x, y)
    (root / "4" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = train(Config(dataset=f"folder:{root}", skip_bad_images=True, epochs=1,
                          checkpoint_dir=str(tmp_path / "ck")))
    run = mlflow.MlflowClient().get_run(result["run_id"])
    assert run.data.params["data.skipped_images"] == "1"
    text = mlflow.artifacts.load_text(f"runs:/{result['run_id']}/data/skipped_images.txt")
    assert text.strip().endswith("broken.png")


def _bad_cases(tmp_path):
    x, y = mnist(120)
    good = write_png_folder(tmp_path / "good", x, y)
    corrupt = write_png_folder(tmp_path / "corrupt", x, y)
    Image.fromarray(x[0]).convert("RGB").save(corrupt / "1" / "cut.jpg")
    data = (corrupt / "1" / "cut.jpg").read_bytes()
    (corrupt / "1" / "cut.jpg").write_bytes(data[: len(data) // 2])
    text = write_png_folder(tmp_path / "text", x, y)
    (text / "2" / "readme.jpg").write_text("hello")
    empty = write_png_folder(tmp_path / "empty", x, y)
    (empty / "zzz").mkdir()
    split = tmp_path / "split"
    write_png_folder(split / "train", x, y)
    write_png_folder(split / "test", x[y != 5], y[y != 5])
    paths = sorted(good.rglob("*.png"))
    rel = paths[0].relative_to(tmp_path).as_posix()
    lists = {"missing": f"{rel} 1\nnope/none.png 2\n", "label": f"{rel} 1\n{rel} x\n",
             "range": f"{rel} 1\n{rel} -3\n", "escape": f"{rel} 1\n../../etc/passwd 1\n",
             "absolute": f"{rel} 1\n/etc/passwd 1\n"}
    for name, body in lists.items():
        (tmp_path / f"{name}.txt").write_text(body)
    root = f"data_root={tmp_path}"
    return [
        ([f"dataset=folder:{corrupt}"], "cut.jpg"),
        ([f"dataset=folder:{text}"], "readme.jpg"),
        ([f"dataset=folder:{empty}"], "'zzz'"),
        ([f"dataset=folder:{split}"], "only in train: ['5']"),
        ([f"dataset=folder:{tmp_path / 'nowhere'}"], "nowhere"),
        (["dataset=list:missing.txt", root], "nope/none.png"),
        (["dataset=list:label.txt", root], "'x'"),
        (["dataset=list:range.txt", root], "the target -3 of training entry 2"),
        (["dataset=list:escape.txt", root], "../../etc/passwd"),
        (["dataset=list:absolute.txt", root], "/etc/passwd"),
        (["dataset=list:missing.txt"], "data_root"),
        ([f"dataset=folder:{good}", "image_size=4"], "image_size=4"),
        ([f"dataset=folder:{good}", "cache=ram"], "cache='ram'"),
        (["dataset=cub200"], "retrieval protocol"),
        (["dataset=no_such_module_xyz:load"], "no_such_module_xyz"),
    ]


def test_bad_data_exits_2_names_the_value_and_creates_no_run(tmp_path, mlflow_store, capsys):
    for argv, named in _bad_cases(tmp_path):
        code = run_cli(train, [*argv, "epochs=1", f"checkpoint_dir={tmp_path / 'ck'}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, (argv, err)
        assert len(err) == 1 and named in err[0], (argv, err)
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_a_user_source_module_function_trains(tmp_path, mlflow_store, capsys):
    result = train(Config(dataset="user_source_example:load", epochs=1,
                          checkpoint_dir=str(tmp_path / "ck")))
    params = mlflow.MlflowClient().get_run(result["run_id"]).data.params
    assert params["data.image_size"] == "32" and params["data.channels"] == "3"
    assert run_cli(train, ["dataset=user_source_example:not_a_source"]) == 2
    assert "must return ((train_images" in capsys.readouterr().err


def test_the_readme_protocol_command_trains_under_mock_data(tmp_path, mlflow_store):
    """`make train LOSS=proxy_anchor DATASET=cub200`: CUB's 200 classes as records of real
    digits (2 a class), classes 0–99 trained with P×K batches, 100–199 queried."""
    with tfds.testing.mock_data(as_dataset_fn=tfds_records(400, 200)):
        result = train(Config(loss="proxy_anchor", dataset="cub200", epochs=1, image_size=8,
                              batch_size=8, samples_per_class=2,
                              checkpoint_dir=str(tmp_path / "ck")))
    assert 0 <= result["precision_at_1"] <= 1
    params = mlflow.MlflowClient().get_run(result["run_id"]).data.params
    assert params["data.image_size"] == "8" and params["augment"] == "auto"
