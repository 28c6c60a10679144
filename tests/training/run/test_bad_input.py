"""Bad input through the real command line: one message, exit code 2, and no run created.

Every case goes through `run_cli(train, argv)`, the function `python -m training.train`
calls, in-process (a subprocess costs ~10 s of TensorFlow import per case); one case runs
through a real subprocess to pin the process exit code and the single-line output.
"""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from training.cli import run_cli
from training.train import train

REPO_ROOT = Path(__file__).resolve().parents[3]


def _idx(array, magic=None) -> bytes:
    """IDX written out by hand: big-endian magic 0x0000080N, one uint32 per dim, raw bytes."""
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x800 | array.ndim if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _folder(root: Path, name: str, images: bytes | None, labels: bytes | None) -> str:
    """`idx:` folder holding the t10k pair (raw, or garbage where gzip is expected)."""
    folder = root / name
    folder.mkdir()
    if images is not None:
        (folder / "t10k-images-idx3-ubyte").write_bytes(images)
    if labels is not None:
        (folder / "t10k-labels-idx1-ubyte").write_bytes(labels)
    return f"dataset=idx:{folder}"


def _toy(n=60, classes=3):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), np.arange(n, dtype=np.uint8) % classes


def _data_cases(root: Path) -> list[tuple[list[str], str]]:
    images, labels = _toy()
    good_images, good_labels = _idx(images), _idx(labels)
    corrupt = root / "corrupt"
    corrupt.mkdir()
    (corrupt / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    (corrupt / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(good_labels))
    return [
        ([f"dataset=idx:{root / 'nowhere'}"], "does not exist"),
        ([_folder(root, "empty", None, None)], "has no complete IDX images+labels pair"),
        ([f"dataset=idx:{corrupt}"], "is corrupt or unreadable"),
        ([_folder(root, "truncated", good_images[:-100], good_labels)], "is truncated"),
        ([_folder(root, "magic", good_images, _idx(labels, magic=0x803))], "has magic number"),
        ([_folder(root, "count", good_images, _idx(labels[:-1]))], "60 images but"),
        (
            [_folder(root, "range", good_images, _idx(np.where(labels == 2, 7, labels)))],
            "label(s) 7 outside the class range [0, 3)",
        ),
        # 131 training images per digit; class 7 keeps ⌊131 · 1000^(−7/9)⌋ = ⌊0.61⌋ = 0.
        (["imbalance=1000"], "leaves class 7 ('7') with 0 training images"),
        (
            [_folder(root, "few", good_images, good_labels), "loss=triplet", "batch_size=8", "samples_per_class=4"],
            "retrieval needs at least 4 classes",
        ),
        (
            ["loss=triplet", "samples_per_class=150", "batch_size=300"],
            "k=150 images per class, but class",
        ),
        (["dataset=mnistt"], "unknown dataset 'mnistt'"),
    ]


CONFIG_CASES = [
    (["lr=0.1"], "unknown config key 'lr'"),
    (["epochs=two"], "epochs='two' is not an integer"),
    (["epochs=0"], "epochs=0 is out of range"),
    (["loss=triplet", "batch_size=30"], "batch_size=30 must split into P×K"),
    (["loss=focal", "gamma=-1"], "gamma=-1.0 is out of range"),
    (["loss=triplet", "margin=-0.5"], "margin=-0.5 is out of range"),
    (["imbalance=0.5"], "imbalance=0.5 is out of range"),
    (["loss=balanced_ce", "beta=1"], "beta=1.0 is out of range; valid: >= 0 and < 1 number, or none"),
    (["loss=balanced_ce", "beta=-0.1"], "beta=-0.1 is out of range"),
    (["loss=hinge"], "unknown loss 'hinge'; known losses: arcface, balanced_ce, cb_focal, ce"),
    (["loss=focal", "margin=1"], "unknown config key 'margin'; focal takes gamma, alpha"),
    (["loss=no_such_module:Loss"], "module 'no_such_module' does not import"),
    (["loss=json:JSONDecoder"], "is not a keras.losses.Loss subclass"),
    (["plugins=no_such_plugin"], "plugins='no_such_plugin' does not import"),
]


def _assert_no_run(uri: str) -> None:
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs == [], [(r.info.run_id, r.info.status) for r in runs]


def test_config_errors_exit_2_with_one_message_and_no_run(mlflow_store, capsys):
    for argv, message in CONFIG_CASES:
        assert run_cli(train, argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert message in err, (argv, err)
    _assert_no_run(mlflow_store)


@pytest.mark.slow
def test_data_errors_exit_2_before_any_run_is_created(mlflow_store, tmp_path, capsys):
    """Data is loaded and checked before the MLflow run opens, so no run is ever created."""
    for argv, message in _data_cases(tmp_path):
        assert run_cli(train, [*argv, "epochs=1"]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert message in err, (argv, err)
    _assert_no_run(mlflow_store)


@pytest.mark.slow
def test_real_process_exits_2_with_one_line(mlflow_store, tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    env.pop("DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "training.train", "loss=focal", "gamma=-1"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert lines == ["error: gamma=-1.0 is out of range; valid: >= 0 number"]
    assert "Traceback" not in proc.stderr
    _assert_no_run(mlflow_store)
