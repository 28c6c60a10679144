"""Compare and report through a real MLflow store, with a stand-in trainer that logs
hand-chosen numbers (seconds, no TensorFlow training): failed children, hand-computed
report values, and the report CLI's answers for missing compares."""

from __future__ import annotations

import math
import types
from pathlib import Path

import mlflow
import numpy as np
import pytest

from training.compare import CompareIncomplete, parse_settings
from training.data import DataError
from training.landscape import Landscape, log_landscape
from training.report import build_report
from training.report.__main__ import main as report_main
from training.run import tracking
from training.study import compare as compare_module

pytestmark = pytest.mark.slow  # the shared stand-in compare takes 15-50 s (load-dependent)

# variant -> metric -> value per seed (seeds 0, 1, 2). focal seed 2 fails inside its run.
FAKE = {
    "ce": {"test/accuracy": [0.80, 0.82, 0.84], "test/ece": [0.10, 0.20, 0.30],
           "time/wall_seconds": [10.0, 11.0, 12.0]},
    "focal": {"test/accuracy": [0.90, 0.91, 0.92], "test/ece": [0.15, 0.20, 0.25],
              "time/wall_seconds": [10.0, 11.0, 12.0]},
}
COUNTS = [50, 40, 30, 20, 10, 8, 6, 4, 2, 1]  # training images per class: tail = 9, 8, 7


def fake_train(config, *, parent_run_id=None):
    """Logs what `train` logs (params, tags, dataset inputs, curves, test metrics, outputs)."""
    variant = config.run_name.split("-seed")[0]
    y_train = np.repeat(np.arange(10), COUNTS)
    y_small = np.arange(10)
    splits = types.SimpleNamespace(name="digits", x_train=y_train[:, None] * 1.0, y_train=y_train,
                                   x_val=y_small[:, None] * 1.0, y_val=y_small,
                                   x_test=y_small[:, None] * 1.0, y_test=y_small)
    with tracking.open_run(config, parent_run_id=parent_run_id, tags=tracking.run_tags(config)) as run:
        tracking.log_config(config)
        tracking.log_dataset(splits)
        for epoch in (1, 2):
            tracking.log_metrics({"val/accuracy": 0.3 * epoch + 0.01 * config.seed}, step=epoch)
        metrics = {k: v[config.seed] for k, v in FAKE[variant].items()}
        for c in range(10):  # ce recalls the tail well (c/10), focal the head (1 - c/10)
            metrics[f"test/recall_class_{c}"] = c / 10 if variant == "ce" else 1 - c / 10
        tracking.log_metrics(metrics, step=2)
        probs = np.eye(10)[y_small] * 0.5 + 0.05
        tracking.log_arrays({"probs": probs, "labels": y_small}, "eval/test_outputs.npz")
        if config.landscape:  # a hand-made 3×3 landscape, bowl-shaped, steeper for focal
            coords = np.array([-1.0, 0.0, 1.0])
            scale = 2.0 if variant == "focal" else 1.0
            log_landscape(Landscape(
                alphas=np.array([0.0, 0.5, 1.0]), profile=np.array([2.3, 1.0, 0.1]),
                coords=coords, grid=0.1 + scale * (coords[:, None] ** 2 + coords[None, :] ** 2),
                sharpness=0.5 * scale, center_loss=0.1, sharpness_radius=0.5,
                ring_angles=np.array([0.0, np.pi]), ring_losses=np.array([0.35, 0.35]), seed=0,
            ))
        if variant == "focal" and config.seed == 2:
            raise RuntimeError("boom")
    return {"run_id": run.info.run_id}


@pytest.fixture(scope="module")
def fake_compare(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fake_compare")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        patch.setattr("training.run.trainer.train", fake_train)
        mlflow.set_tracking_uri(uri)
        settings = parse_settings(["losses=ce,focal", "seeds=3", "epochs=2", "landscape=true",
                                   "experiment=compare-fake"])
        with pytest.raises(CompareIncomplete) as caught:
            compare_module.compare(settings)
        client = mlflow.MlflowClient(uri)
        parent = client.search_runs(
            [client.get_experiment_by_name("compare-fake").experiment_id],
            "tags.`losslab.compare` = 'true'")[0]
        report_md = Path(client.download_artifacts(parent.info.run_id, "report.md",
                                                   str(folder))).read_text()
        yield {"client": client, "parent": parent, "error": caught.value,
               "report_md": report_md, "folder": folder}
        while mlflow.active_run():
            mlflow.end_run()


def test_a_failed_child_is_reported_and_the_others_kept(fake_compare):
    client, parent = fake_compare["client"], fake_compare["parent"]
    assert "1 of 6 runs failed" in str(fake_compare["error"])
    assert "focal seed 2: RuntimeError: boom" in str(fake_compare["error"])
    assert parent.info.status == "FAILED"
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.info.status for r in children) == ["FAILED"] + ["FINISHED"] * 5
    assert "focal seed 2: FAILED (RuntimeError: boom)" in fake_compare["report_md"]
    assert "| focal | 2 |" in fake_compare["report_md"]
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert figures == {"figures/curves_classification.png", "figures/per_class_recall.png",
                       "figures/reliability.png", "figures/landscapes_classification.png"}


def test_report_values_match_hand_computation(fake_compare):
    report = build_report(fake_compare["client"], fake_compare["parent"].info.run_id)
    ce, focal = report.table["classification"]["ce"], report.table["classification"]["focal"]
    # ce accuracy 0.80, 0.82, 0.84: mean 0.82, deviations ±0.02 -> std sqrt(0.0008 / 2) = 0.02.
    assert (ce["accuracy"].mean, ce["accuracy"].std, ce["accuracy"].n) == pytest.approx(
        (0.82, 0.02, 3))
    # focal: seed 2 failed, so 0.90, 0.91 only: std = 0.01 / sqrt(2).
    assert (focal["accuracy"].mean, focal["accuracy"].std, focal["accuracy"].n) == pytest.approx(
        (0.905, 0.01 / math.sqrt(2), 2))
    assert (ce["ece"].mean, ce["ece"].std) == pytest.approx((0.2, 0.1))
    assert (focal["ece"].mean, focal["ece"].std) == pytest.approx((0.175, 0.05 / math.sqrt(2)))
    # Tail = classes 9, 8, 7: ce (0.9 + 0.8 + 0.7) / 3, focal (0.1 + 0.2 + 0.3) / 3.
    assert (ce["tail_recall"].mean, ce["tail_recall"].std) == pytest.approx((0.8, 0.0))
    assert focal["tail_recall"].mean == pytest.approx(0.2)
    assert report.wins["classification"] == {
        "accuracy": "focal",  # 0.905 - 0.0071 > 0.82 + 0.02
        "balanced_accuracy": None,  # not logged by the stand-in: no data
        "macro_f1": None,
        "ece": None,  # 0.175 ± 0.035 overlaps 0.2 ± 0.1
        "tail_recall": "ce",  # 0.8 ± 0 vs 0.2 ± 0
        "wall_seconds": None,  # 11 ± 1 vs 10.5 ± 0.71
    }
    assert report.markdown == fake_compare["report_md"]


def test_report_cli_rebuilds_the_same_report(fake_compare, capsys):
    capsys.readouterr()
    assert report_main(["experiment=compare-fake"]) == 0
    assert fake_compare["report_md"] in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["experiment=compare-nope"], "holds no compare run (run make compare first)"),
        (["parent=0123456789abcdef"], "no such run"),
        (["bogus=1"], "valid keys: experiment, parent"),
    ],
)
def test_report_cli_bad_input_exits_2(fake_compare, args, needle, capsys):
    assert report_main(args) == 2
    assert needle in capsys.readouterr().err


def test_report_cli_refuses_a_run_that_is_not_a_compare(fake_compare, capsys):
    client, parent = fake_compare["client"], fake_compare["parent"]
    child = client.search_runs([parent.info.experiment_id],
                               f"tags.mlflow.parentRunId = '{parent.info.run_id}'")[0]
    assert report_main([f"parent={child.info.run_id}"]) == 2
    assert "not a compare parent run" in capsys.readouterr().err


def test_all_children_failing_reraises_the_first_error(fake_compare, monkeypatch, capsys):
    def no_data(config, *, parent_run_id=None):
        raise DataError(f"dataset {config.dataset!r} cannot be loaded")

    monkeypatch.setattr("training.run.trainer.train", no_data)
    assert compare_module.main(["losses=ce", "seeds=2", "experiment=compare-broken"]) == 2
    assert "cannot be loaded" in capsys.readouterr().err
    client = fake_compare["client"]
    broken = client.get_experiment_by_name("compare-broken").experiment_id
    (parent,) = client.search_runs([broken])
    assert parent.info.status == "FAILED"
    capsys.readouterr()
    assert report_main([]) == 0  # no arguments: the latest compare in the store, this one
    out = capsys.readouterr().out
    assert f"parent run `{parent.info.run_id}`" in out and "No finished runs yet." in out
