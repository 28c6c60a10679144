"""Bad input through the real command line: one message, exit code 2, and no run created.

Every case goes through the function its `python -m` entry point calls (`run_cli(train,
argv)`, the tuner's, the compare's, report, landscape, runs-clean and workers `main`),
in-process (a subprocess costs ~10 s of TensorFlow import per case); one case runs through a
real subprocess to pin the process exit code and the single-line output.
"""

from __future__ import annotations

import gzip
import os
import socket
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

# Issue 28: numbers that are not finite (1e309 parses as inf), a key given twice, and paths
# that cannot work, all found before any run exists.
NON_FINITE = [
    (["learning_rate=1e309"], "learning_rate=inf is not a finite number"),
    (["learning_rate=-1e309"], "learning_rate=-inf is not a finite number"),
    (["l2=nan"], "l2=nan is not a finite number"),
    (["imbalance=inf"], "imbalance=inf is not a finite number"),
    (["weight_decay=-inf"], "weight_decay=-inf is not a finite number"),
    (["val_fraction=nan"], "val_fraction=nan is not a finite number"),
    (["landscape_radius=inf"], "landscape_radius=inf is not a finite number"),
    (["head_lr_mult=1e400"], "head_lr_mult=inf is not a finite number"),
    (["sam_rho=NaN"], "sam_rho=nan is not a finite number"),
    (["sharpness_rho=Infinity"], "sharpness_rho=inf is not a finite number"),
    (["cache_budget=nan"], "cache_budget=nan is not a finite number"),
    (["loss=focal", "gamma=inf"], "gamma=inf"),
]
TWICE = [
    (["epochs=1", "epochs=2"], "epochs is given twice (epochs=1 and epochs=2)"),
    (["loss=ce", "loss=focal"], "loss is given twice (loss=ce and loss=focal)"),
    (["batch-size=32", "batch_size=64"], "batch_size is given twice"),
    (["loss=focal", "gamma=1", "gamma=2"], "gamma is given twice"),
]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _matrix(tmp_path: Path) -> list[tuple[str, dict, list[str], str]]:
    """(command, environment, argv, text the one error line must hold), every case exit 2."""
    from training.landscape.__main__ import main as landscape_main
    from training.store import main as runs_clean_main
    from training.study.compare import main as compare_main
    from training.study.report.__main__ import main as report_main
    from training.study.tune import main as tune_main
    from training.workers import main as workers_main

    folder = tmp_path / "a-folder"
    folder.mkdir()
    down = f"http://alice:{SECRET}@127.0.0.1:{_closed_port()}"
    cases = [("train", {}, argv, text) for argv, text in CONFIG_CASES + NON_FINITE + TWICE]
    cases += [
        ("train", {}, ["checkpoint_dir=/proc/x"], "checkpoint_dir=/proc/x: the folder /proc/x"),
        ("train", {}, ["checkpoint_dir=/etc/hostname"], "checkpoint_dir=/etc/hostname"),
        ("train", {}, ["checkpoint_dir=/etc/hostname/sub"], "checkpoint_dir=/etc/hostname/sub"),
        ("train", {"MLFLOW_TRACKING_URI": "sqlite:////etc/hostname/sub/mlflow.db"}, [],
         "MLFLOW_TRACKING_URI=sqlite:////etc/hostname/sub/mlflow.db"),
        ("train", {"MLFLOW_TRACKING_URI": "sqlite:////proc/x/mlflow.db"}, [],
         "MLFLOW_TRACKING_URI=sqlite:////proc/x/mlflow.db"),
        ("train", {"MLFLOW_TRACKING_URI": f"sqlite:///{folder}"}, [], f"{folder} is not a file"),
        ("train", {"MLFLOW_TRACKING_URI": down}, [], "tracking server http://alice:***@127.0.0.1"),
        ("train", {}, ["resume=0123abc"], "resume=0123abc: no such run in the tracking store"),
        ("tune", {"OPTUNA_STORAGE": "/proc/x/optuna.journal"}, ["loss=focal", "trials=2"],
         "OPTUNA_STORAGE=/proc/x/optuna.journal: the folder /proc/x"),
        ("tune", {"OPTUNA_STORAGE": "sqlite:////proc/x/o.db"}, ["loss=focal", "trials=2"],
         "OPTUNA_STORAGE=sqlite:////proc/x/o.db: the folder /proc/x"),
        ("tune", {"OPTUNA_STORAGE": str(folder)}, ["loss=focal", "trials=2"],
         f"OPTUNA_STORAGE={folder}: {folder} is a folder"),
        ("tune", {"MLFLOW_TRACKING_URI": "sqlite:////etc/hostname/m.db"},
         ["loss=focal", "trials=2"], "MLFLOW_TRACKING_URI=sqlite:////etc/hostname/m.db"),
        ("tune", {"MLFLOW_TRACKING_URI": down}, ["loss=focal", "trials=2"],
         "the MLflow store http://alice:***@127.0.0.1"),
        ("tune", {}, ["loss=focal", "trials=0"], "trials=<value> is required"),
        ("tune", {}, ["loss=focal", "trials=2", "pruner=bogus"], "pruner='bogus'"),
        ("tune", {}, ["loss=focal", "trials=2", "objective=val/bogus"], "val/bogus"),
        ("tune", {}, ["loss=focal", "trials=2", "trials=3"], "trials is given twice"),
        ("tune", {}, ["loss=focal", "trials=2", "learning_rate=nan"],
         "learning_rate=nan is not a finite number"),
        ("tune", {}, ["loss=focal", "trials=2", "gamma=inf"], "gamma=inf"),
        ("compare", {}, ["losses=nope"], "nope"),
        ("compare", {}, ["seeds=0"], "seeds='0' is not valid"),
        ("compare", {}, ["seeds=1", "seeds=2"], "seeds is given twice"),
        ("compare", {}, ["learning_rate=inf"], "learning_rate=inf is not a finite number"),
        ("compare", {}, ["losses=ce", "checkpoint_dir=/proc/x"], "checkpoint_dir=/proc/x"),
        ("compare", {"MLFLOW_TRACKING_URI": "sqlite:////proc/x/m.db"}, ["losses=ce"],
         "MLFLOW_TRACKING_URI=sqlite:////proc/x/m.db"),
        ("report", {}, ["bogus=1"], "unknown key 'bogus'"),
        ("report", {}, ["parent=0123abc"], "parent='0123abc'"),
        ("report", {}, ["experiment=a", "experiment=b"], "experiment is given twice"),
        ("report", {"MLFLOW_TRACKING_URI": "sqlite:////proc/x/m.db"}, [],
         "MLFLOW_TRACKING_URI=sqlite:////proc/x/m.db"),
        ("report", {"MLFLOW_TRACKING_URI": down}, [], "http://alice:***@127.0.0.1"),
        ("landscape", {}, [], "run=<value> is required"),
        ("landscape", {}, ["run=abc", "points=x"], "points='x' is not valid"),
        ("landscape", {}, ["run=abc", "run=def"], "run is given twice"),
        ("landscape", {"MLFLOW_TRACKING_URI": "sqlite:////proc/x/m.db"}, ["run=abc"],
         "MLFLOW_TRACKING_URI=sqlite:////proc/x/m.db"),
        ("runs-clean", {}, ["stale_after=-1"], "stale_after=-1 is out of range"),
        ("runs-clean", {}, ["stale_after=soon"], "stale_after='soon' is not valid"),
        ("runs-clean", {"LOSSLAB_STALE_AFTER_S": "soon"}, [], "LOSSLAB_STALE_AFTER_S='soon'"),
        ("runs-clean", {"MLFLOW_TRACKING_URI": "sqlite:////etc/hostname/m.db"}, [],
         "MLFLOW_TRACKING_URI=sqlite:////etc/hostname/m.db"),
        ("workers", {}, ["workers=0"], "workers=0 is out of range"),
        ("workers", {}, ["workers=2", "workers=3"], "workers is given twice"),
        ("workers", {"MLFLOW_TRACKING_URI": "sqlite:////proc/x/m.db"}, ["workers=2"],
         "MLFLOW_TRACKING_URI=sqlite:////proc/x/m.db"),
    ]
    commands = {"train": lambda argv: run_cli(train, argv), "tune": tune_main,
                "compare": compare_main, "report": report_main, "landscape": landscape_main,
                "runs-clean": runs_clean_main, "workers": workers_main}
    return [(name, commands[name], env, argv, text) for name, env, argv, text in cases]


SECRET = "s3cretPW-bad-input"


def _assert_no_run(uri: str) -> None:
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs == [], [(r.info.run_id, r.info.status) for r in runs]


def test_bad_input_matrix_exit_2_one_line_no_run(mlflow_store, tmp_path, monkeypatch, capsys):
    """Every entry point, in-process (the function `python -m` calls): exit 2, one error
    line naming the value (report and landscape add their usage line), no traceback, no
    secret, and no run in the store afterwards."""
    monkeypatch.delenv("DEBUG", raising=False)
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    cases, failures = _matrix(tmp_path), []
    assert len(cases) >= 60
    for name, command, env, argv, text in cases:
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            code = command(list(argv))
        mlflow.set_tracking_uri(mlflow_store)
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error")]
        others = [line for line in err.splitlines()
                  if not line.startswith(("error", "usage:"))]
        problems = [what for what, bad in [
            (f"exit {code}", code != 2),
            ("not one error line", len(errors) != 1 or others),
            (f"{text!r} not named", text not in err),
            ("traceback", "Traceback" in err or "Background on this error" in err),
            ("secret shown", SECRET in err),
        ] if bad]
        if problems:
            failures.append((name, env, argv, problems, err[-600:]))
    print(f"\nbad-input matrix: {len(cases)} cases, {len(cases) - len(failures)} clear, "
          "exit 2, one line, no traceback")
    assert failures == [], "\n".join(map(str, failures))
    _assert_no_run(mlflow_store)
    assert not Path("/proc/x").exists()


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
