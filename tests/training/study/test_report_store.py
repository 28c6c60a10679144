"""Compare and report through a real MLflow store, with a stand-in trainer that logs
hand-chosen numbers (seconds, no TensorFlow training): failed children, hand-computed
report values and paired statistics, what `publish` puts on the parent (CSV, per-loss
mean/std metrics, description), an old and interrupted compare, and the report CLI's answers
for missing compares and bad references."""

from __future__ import annotations

import csv
import io
import math
import types
from pathlib import Path

import mlflow
import numpy as np
import pytest

from training.compare import CompareIncomplete, parse_settings
from training.data import DataError
from training.landscape import Landscape, log_landscape
from training.report import Report, build_report, publish
from training.report.__main__ import main as report_main
from training.run import tracking
from training.study import compare as compare_module
from training.study.report.summary import METRICS, Stat, TaskSummary

pytestmark = pytest.mark.slow  # the shared stand-in compare takes 15-50 s (load-dependent)

# variant -> metric -> value per seed (seeds 0, 1, 2). focal seed 2 fails inside its run.
# Shot groups of COUNTS: none has > 100 images (no many-shot metric, as the trainer does).
FAKE = {
    "ce": {"test/accuracy": [0.80, 0.82, 0.84], "test/ece": [0.10, 0.20, 0.30],
           "test/balanced_accuracy_posthoc": [0.70, 0.71, 0.72],
           "test/medium_shot_accuracy": [0.9, 0.9, 0.9], "test/few_shot_accuracy": [0.5, 0.5, 0.5],
           "time/wall_seconds": [10.0, 11.0, 12.0]},
    "focal": {"test/accuracy": [0.90, 0.91, 0.92], "test/ece": [0.15, 0.20, 0.25],
              "test/balanced_accuracy_posthoc": [0.75, 0.74, 0.0],
              "test/medium_shot_accuracy": [0.8, 0.8, 0.8],
              "test/few_shot_accuracy": [0.6, 0.6, 0.6],
              "time/wall_seconds": [10.0, 11.0, 12.0]},
}
COUNTS = [50, 40, 30, 20, 10, 8, 6, 4, 2, 1]  # training images per class: tail = 9, 8, 7


def fake_recall(variant: str) -> list[float]:
    """ce recalls the tail well (c/10), focal the head (1 - c/10)."""
    return [c / 10 if variant == "ce" else 1 - c / 10 for c in range(10)]


def fake_train(config, *, parent_run_id=None, **_):
    """Logs what `train` logs (params, losslab. tags, dataset inputs, curves, test metrics,
    the per-class recall table, raw test outputs)."""
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
        tracking.log_metrics({k: v[config.seed] for k, v in FAKE[variant].items()}, step=2)
        mlflow.log_table({"class": [str(c) for c in range(10)], "train_images": COUNTS,
                          "test_images": [1] * 10, "recall": fake_recall(variant)},
                         "eval/per_class_recall.json")
        probs = np.eye(10)[y_small] * 0.5 + 0.05
        tracking.log_arrays({"probs": probs, "labels": y_small}, "eval/test_outputs.npz")
        if config.landscape:  # a hand-made 3×3 landscape, bowl-shaped, steeper for focal;
            # sharpness: ce 0.5, 0.55, 0.6; focal 1.0, 1.1 (seed 2 fails)
            coords = np.array([-1.0, 0.0, 1.0])
            scale = 2.0 if variant == "focal" else 1.0
            log_landscape(Landscape(
                alphas=np.array([0.0, 0.5, 1.0]), profile=np.array([2.3, 1.0, 0.1]),
                coords=coords, grid=0.1 + scale * (coords[:, None] ** 2 + coords[None, :] ** 2),
                sharpness=0.5 * scale * (1 + 0.1 * config.seed), center_loss=0.1,
                sharpness_radius=0.5,
                ring_angles=np.array([0.0, np.pi]), ring_losses=np.array([0.35, 0.35]), seed=0,
            ))
        if variant == "focal" and config.seed == 2:
            raise RuntimeError("boom")
    return {"run_id": run.info.run_id}


@pytest.fixture(scope="module")
def fake_compare(tmp_path_factory, new_store):
    folder = tmp_path_factory.mktemp("fake_compare")
    uri = new_store(folder / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        patch.setattr("training.run.trainer.train", fake_train)
        # Each run's own landscape PNGs (4 per run, ~1 s of rendering each on 2 busy cores)
        # are not drawn: the report reads only grid.npz and the metrics; those figures have
        # their own tests (tests/training/test_plots.py, landscape/).
        patch.setattr("training.landscape.tracking.figures", lambda landscape, title: {})
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
    assert "1 of 6 cells failed" in str(fake_compare["error"])
    assert "focal seed 2: RuntimeError: boom" in str(fake_compare["error"])
    assert parent.info.status == "FAILED"
    children = [r for r in client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
        if "losslab.summary" not in r.data.tags]
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
    assert (ce["test/accuracy"].mean, ce["test/accuracy"].std, ce["test/accuracy"].n) == (
        pytest.approx((0.82, 0.02, 3)))
    # focal: seed 2 failed, so 0.90, 0.91 only: std = 0.01 / sqrt(2).
    assert (focal["test/accuracy"].mean, focal["test/accuracy"].std,
            focal["test/accuracy"].n) == pytest.approx((0.905, 0.01 / math.sqrt(2), 2))
    assert (ce["test/ece"].mean, ce["test/ece"].std) == pytest.approx((0.2, 0.1))
    assert (focal["test/ece"].mean, focal["test/ece"].std) == pytest.approx(
        (0.175, 0.05 / math.sqrt(2)))
    # Tail = classes 9, 8, 7 of the recall tables: ce (0.9 + 0.8 + 0.7) / 3, focal (0.1 + 0.2
    # + 0.3) / 3.
    assert (ce["test/tail_recall"].mean, ce["test/tail_recall"].std) == pytest.approx((0.8, 0.0))
    assert focal["test/tail_recall"].mean == pytest.approx(0.2)
    summary = report.summaries["classification"]
    assert summary.reference == "ce"  # the first listed loss
    # Paired with ce over seeds 0 and 1 (focal seed 2 failed): accuracy d = 0.10, 0.09:
    # mean 0.095, sd 0.01/√2, se 0.005, t = 19; ν = 1: p = 1 − 2 arctan(19)/π, t(0.975) =
    # tan(0.475 π). One loss compared: Holm leaves p as it is.
    acc = summary.paired["focal"]["test/accuracy"]
    half = math.tan(0.475 * math.pi) * 0.005
    assert (acc.n, acc.delta_mean, acc.ci_low, acc.ci_high) == pytest.approx(
        (2, 0.095, 0.095 - half, 0.095 + half))
    assert acc.p_value == pytest.approx(1 - 2 * math.atan(19) / math.pi) == acc.p_holm
    # ECE d = 0.05, 0: mean 0.025, se 0.025, t = 1: p = 1 − 2 arctan(1)/π = 0.5.
    assert summary.paired["focal"]["test/ece"].p_holm == pytest.approx(0.5)
    verdicts = {m.key: summary.verdict("focal", m) for m in summary.metrics}
    assert verdicts == {
        "test/accuracy": "better",  # p 0.033
        "test/balanced_accuracy": None,  # not logged by the stand-in: no data
        "test/balanced_accuracy_posthoc": None,  # d = 0.05, 0.03: p 0.16
        "test/macro_f1": None,
        "test/ece": None,  # p 0.5
        "test/tail_recall": "worse",  # d = −0.6 at both seeds
        "test/medium_shot_accuracy": "worse",  # d = −0.1 at both seeds
        "test/few_shot_accuracy": "better",
        # d = 0.5, 0.55: mean 0.525, sd 0.05/√2, se 0.025, t = 21: p = 1 − 2 arctan(21)/π
        # = 0.030; sharper (higher) is worse.
        "landscape/sharpness": "worse",
        "time/wall_seconds": None,  # d = 0, 0: no test
    }
    assert summary.paired["focal"]["landscape/sharpness"].p_holm == pytest.approx(
        1 - 2 * math.atan(21) / math.pi)
    assert (ce["landscape/sharpness"].mean, ce["landscape/sharpness"].std) == pytest.approx(
        (0.55, 0.05))
    assert "test/many_shot_accuracy" not in verdicts  # never logged: no column
    assert report.markdown == fake_compare["report_md"]
    assert "Warning: fewer than 3 seeds paired with ce: focal (2 seeds)." in report.markdown


def _summary_runs(client, parent_id: str) -> dict:
    parent = client.get_run(parent_id)
    found = client.search_runs([parent.info.experiment_id],
                               f"tags.mlflow.parentRunId = '{parent_id}' and "
                               "tags.`losslab.summary` = 'true'")
    return {r.data.tags["losslab.variant"]: r for r in found}


def test_publish_logs_csv_one_summary_run_per_loss_and_the_description(fake_compare):
    client, parent = fake_compare["client"], fake_compare["parent"]
    report = build_report(client, parent.info.run_id)
    publish(client, report)  # a second publish (the compare made the first) reuses the runs
    logged = client.get_run(parent.info.run_id).data
    assert logged.tags["mlflow.note.content"] == report.markdown
    assert logged.metrics == {}  # no more <loss>/<metric>/mean on the parent
    # MLflow's UI cannot average seeds: one summary run per loss, a training run's keys.
    summaries = _summary_runs(client, parent.info.run_id)
    assert sorted(summaries) == ["ce", "focal"]
    ce, focal = summaries["ce"], summaries["focal"]
    assert (ce.info.run_name, focal.info.run_name) == ("ce · mean of 3 seeds",
                                                       "focal · mean of 2 seeds")
    assert ce.info.status == focal.info.status == "FINISHED"
    assert focal.data.metrics["test/accuracy"] == pytest.approx(0.905)
    assert focal.data.metrics["test/accuracy_std"] == pytest.approx(0.01 / math.sqrt(2))
    assert (focal.data.metrics["n"], ce.data.metrics["n"]) == (2, 3)
    assert ce.data.metrics["test/tail_recall"] == pytest.approx(0.8)
    assert ce.data.metrics["time/wall_seconds"] == pytest.approx(11.0)
    assert focal.data.metrics["landscape/sharpness"] == pytest.approx(1.05)
    assert "test/balanced_accuracy" not in ce.data.metrics  # never logged by the stand-in
    # The report reads the training runs only: the same table with the summaries present.
    assert build_report(client, parent.info.run_id).table == report.table
    csv_text = Path(client.download_artifacts(parent.info.run_id, "report.csv",
                                              str(fake_compare["folder"] / "csv"))).read_text()
    assert csv_text == report.csv
    rows = {(r["loss"], r["metric"]): r for r in csv.DictReader(io.StringIO(csv_text))}
    focal = rows["focal", "test/accuracy"]
    paired = report.summaries["classification"].paired["focal"]["test/accuracy"]
    assert (focal["task"], focal["n"]) == ("classification", "2")
    assert float(focal["mean"]) == pytest.approx(0.905)
    assert float(focal["p_holm"]) == paired.p_holm and float(focal["delta_ci_low"]) == (
        paired.ci_low)
    assert rows["ce", "test/accuracy"]["p_value"] == ""  # the reference's own row
    assert float(rows["focal", "landscape/sharpness"]["delta_mean"]) == pytest.approx(0.525)


def test_an_import_path_loss_gets_its_summary_run(fake_compare):
    client = fake_compare["client"]
    run = client.create_run(fake_compare["parent"].info.experiment_id)
    summary = TaskSummary("classification", "my.pkg:MyLoss", (METRICS["classification"][0],),
                          {"my.pkg:MyLoss": {"test/accuracy": Stat(0.5, 0.1, 3)}}, {})
    publish(client, Report(run.info.run_id, "# r\n", "csv\n", {"classification": summary}, {}))
    (only,) = _summary_runs(client, run.info.run_id).values()
    assert only.info.run_name == "my.pkg:MyLoss · mean of 3 seeds"
    assert only.data.metrics == {"test/accuracy": 0.5, "test/accuracy_std": 0.1, "n": 3.0}


def test_a_chosen_reference_changes_the_comparison(fake_compare, capsys):
    capsys.readouterr()
    assert report_main(["experiment=compare-fake", "reference=focal"]) == 0
    out = capsys.readouterr().out
    assert "Reference: **focal**." in out and "| focal (reference) | 2 |" in out
    ce_row = next(line for line in out.splitlines() if line.startswith("| ce | 2 | -"))
    accuracy = ce_row.split(" | ")[2]  # the first metric column
    assert accuracy.startswith("-0.0950 [") and accuracy.endswith(" ▼")  # the sign flips
    assert " ▲" in ce_row  # ce better in tail recall
    assert report_main(["experiment=compare-fake", "reference=poly"]) == 2
    assert "reference='poly' is not a loss of this compare; its losses: ce, focal" in (
        capsys.readouterr().err)
    assert report_main(["experiment=compare-fake"]) == 0  # back to the default for the others
    out = capsys.readouterr().out
    assert fake_compare["report_md"] in out
    assert "one summary run per loss under it" in out


def test_an_old_and_interrupted_compare_still_reports(fake_compare, capsys):
    """A store from before the recall table and the losslab. tags: per-class recall as
    `test/recall_class_<c>` metrics, the task in a `task` tag; one child still RUNNING."""
    client = fake_compare["client"]
    experiment = client.create_experiment("compare-old")
    parent = client.create_run(experiment, tags={"losslab.compare": "true"})
    client.log_param(parent.info.run_id, "losses", "ce,focal")
    y_train = np.repeat(np.arange(10), COUNTS)
    splits = types.SimpleNamespace(name="digits", x_train=y_train[:, None] * 1.0,
                                   y_train=y_train, x_val=y_train[:10, None] * 1.0,
                                   y_val=y_train[:10], x_test=y_train[:10, None] * 1.0,
                                   y_test=y_train[:10])
    for variant, seed, accuracy in (("ce", 0, 0.7), ("ce", 1, 0.8), ("focal", 0, 0.9),
                                    ("focal", 1, None)):
        child = client.create_run(experiment, tags={
            "mlflow.parentRunId": parent.info.run_id, "task": "classification"})
        client.log_param(child.info.run_id, "loss", variant)
        client.log_param(child.info.run_id, "seed", seed)
        if accuracy is None:
            continue  # interrupted: never finished
        mlflow.set_experiment(experiment_id=experiment)  # whatever an earlier test set
        with mlflow.start_run(run_id=child.info.run_id):
            tracking.log_dataset(splits)
            tracking.log_metrics({"test/accuracy": accuracy, **{
                f"test/recall_class_{c}": r for c, r in enumerate(fake_recall(variant))}})
    capsys.readouterr()
    assert report_main(["experiment=compare-old"]) == 0
    out = capsys.readouterr().out
    report = build_report(client, parent.info.run_id)
    ce = report.table["classification"]["ce"]
    assert ce["test/accuracy"].mean == pytest.approx(0.75)
    assert ce["test/tail_recall"].mean == pytest.approx(0.8)  # from the old metrics
    assert report.table["classification"]["focal"]["test/tail_recall"].mean == pytest.approx(0.2)
    assert "| focal | 1 | – |" in out  # one seed paired: no statistics
    assert "focal seed 1: RUNNING" in out
    assert "figures/per_class_recall.png" in report.figures


def test_report_cli_rebuilds_the_same_report(fake_compare, capsys):
    capsys.readouterr()
    assert report_main(["experiment=compare-fake"]) == 0
    assert fake_compare["report_md"] in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["experiment=compare-nope"], "holds no compare run (run make compare first)"),
        (["parent=0123456789abcdef"], "no such run"),
        (["bogus=1"], "valid keys: experiment, parent, reference"),
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
    def no_data(config, *, parent_run_id=None, **_):
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
