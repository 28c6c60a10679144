"""Losses across datasets (training/study/report/across.py): ranks, Friedman, Wilcoxon + Holm,
the critical difference and what few datasets can show, each against numbers computed by hand;
then a report built from a store holding a compare over several datasets (MLflow runs made
with the client, no training)."""

from __future__ import annotations

import csv
import io
import math

import mlflow
import numpy as np
import pytest
from mlflow.entities import Metric, Param

from training.report.__main__ import main as report_main
from training.study.report import across, figures, render_across
from training.study.report.across import across_datasets, floor, power_note
from training.study.report.build import build_report, publish
from training.study.report.collect import collect
from training.study.report.summary import Metric as Column
from training.study.report.summary import Stat, TaskSummary

MAPR = Column("test/map_at_r", "MAP@R")
RMSE = Column("test/rmse", "RMSE", higher_is_better=False)


def test_ranks_within_each_dataset_best_first_ties_averaged():
    values = np.array([[0.9, 0.8, 0.7],
                       [0.5, 0.6, 0.6],
                       [0.1, 0.3, 0.2]])
    assert across.within_dataset_ranks(values, True).tolist() == [
        [1, 2, 3], [3, 1.5, 1.5], [3, 1, 2]]
    assert across.within_dataset_ranks(values, False).tolist() == [
        [3, 2, 1], [1, 2.5, 2.5], [1, 3, 2]]


def _summaries(table: dict[str, dict[str, list[float]]], metric=MAPR):
    """dataset → loss → values per seed → dataset → TaskSummary (stats only)."""
    return {d: TaskSummary("retrieval", "triplet", (metric,),
                           {loss: {metric.key: Stat.of(v)} for loss, v in per.items()}, {})
            for d, per in table.items()}


def test_mean_ranks_average_over_seeds_first():
    # a: seeds 0.9, 0.1 → mean 0.5 ranks below b's 0.6 on d1 though a's best seed is best.
    table = {"d1": {"triplet": [0.4, 0.4], "a": [0.9, 0.1], "b": [0.6, 0.6]},
             "d2": {"triplet": [0.7], "a": [0.8], "b": [0.9]},
             "d3": {"triplet": [0.3, 0.5], "a": [0.2, 0.2], "b": [0.1, 0.1]}}
    result = across_datasets(_summaries(table), MAPR, "triplet")
    # ranks: d1 triplet 3, a 2, b 1; d2 triplet 3, a 2, b 1; d3 triplet 1, a 2, b 3
    assert result.mean_ranks == pytest.approx({"triplet": 7 / 3, "a": 2.0, "b": 5 / 3})
    assert result.best() == ["b"]
    assert result.values[:, 1].tolist() == pytest.approx([0.5, 0.8, 0.2])


def test_friedman_matches_the_chi_square_by_hand():
    # Ranks per dataset (higher value = rank 1): [1,2,3], [1,3,2], [2,1,3]: rank sums 4, 6, 8.
    table = {"d1": {"triplet": [0.9], "a": [0.8], "b": [0.7]},
             "d2": {"triplet": [0.9], "a": [0.7], "b": [0.8]},
             "d3": {"triplet": [0.8], "a": [0.9], "b": [0.7]}}
    result = across_datasets(_summaries(table), MAPR, "triplet")
    n, k, sums = 3, 3, [4, 6, 8]
    chi2 = 12 / (n * k * (k + 1)) * sum(r * r for r in sums) - 3 * n * (k + 1)  # = 8/3
    assert result.friedman_statistic == pytest.approx(chi2)
    assert result.friedman_p == pytest.approx(math.exp(-chi2 / 2))  # χ² sf with 2 df


def test_lower_is_better_metrics_rank_the_smallest_first():
    table = {"d1": {"triplet": [1.0], "a": [2.0], "b": [3.0]},
             "d2": {"triplet": [1.5], "a": [1.0], "b": [2.0]}}
    result = across_datasets(_summaries(table, RMSE), RMSE, "triplet")
    assert result.mean_ranks == pytest.approx({"triplet": 1.5, "a": 1.5, "b": 3.0})


def test_wilcoxon_against_the_reference_with_holm_by_hand():
    # 5 datasets. a − triplet: +1..+5 (all positive): exact two-sided p = 2/2⁵ = 0.0625.
    # b − triplet: +1, +2, +3, +4, −5: W− = 5; 10 of the 32 sign patterns have W ≤ 5 → p = 20/32.
    ref = [0.5, 0.4, 0.3, 0.2, 0.6]
    table = {f"d{i}": {"triplet": [r], "a": [r + 0.01 * (i + 1)],
                       "b": [r + 0.01 * (i + 1) * (1 if i < 4 else -1)]}
             for i, r in enumerate(ref)}
    result = across_datasets(_summaries(table), MAPR, "triplet")
    (pa, holm_a), (pb, holm_b) = result.wilcoxon["a"], result.wilcoxon["b"]
    assert (pa, pb) == pytest.approx((2 / 32, 20 / 32))
    # Holm, m = 2: the smaller p times 2, the larger times 1, kept monotone.
    assert (holm_a, holm_b) == pytest.approx((2 * 2 / 32, 20 / 32))
    assert "triplet" not in result.wilcoxon


def test_critical_difference_matches_demsars_table():
    # Demšar (2006), Table 5: q_0.05 = 2.343 for k = 3, 2.569 for k = 4.
    assert across.critical_difference(3, 3) == pytest.approx(2.343 * math.sqrt(12 / 18), abs=1e-3)
    assert across.critical_difference(4, 10) == pytest.approx(2.569 * math.sqrt(20 / 60),
                                                              abs=1e-3)


def test_the_floor_of_each_test_by_hand():
    low = floor(2, 3)
    # Every dataset ranking alike: χ²_F = n(k − 1) = 4, p = e^{−2}; Wilcoxon exact 2/2².
    assert low.friedman == pytest.approx(math.exp(-2))
    assert low.wilcoxon == pytest.approx(0.5)
    assert floor(6, 3).wilcoxon == pytest.approx(2 / 64)


def test_too_few_datasets_are_said_plainly():
    note = power_note(2, 3)
    assert note.startswith("With 2 datasets no difference can be significant")
    assert f"Friedman's test: p ≥ {math.exp(-2):.3g}" in note
    assert "the Wilcoxon test against the reference: p ≥ 0.5 before Holm over 2, 1 after" in note
    # 6 datasets: Friedman can (e^{−6}), Holm's first Wilcoxon step cannot (2 · 2/64 = 0.0625).
    assert power_note(6, 3).startswith("With 6 datasets the Wilcoxon test against the "
                                       "reference cannot be significant")
    assert power_note(7, 3) == ""  # 2 · 2/128 < 0.05
    # 2 datasets, 9 losses: Friedman can (χ² = 16, 8 df), Nemenyi and Wilcoxon cannot.
    assert power_note(2, 9).startswith("With 2 datasets Nemenyi's test and the Wilcoxon test "
                                       "against the reference cannot be significant")


def test_a_loss_missing_on_a_dataset_is_left_out_and_named():
    table = {"d1": {"triplet": [0.5], "a": [0.6], "b": [0.7]},
             "d2": {"triplet": [0.5], "b": [0.4]}}
    result = across_datasets(_summaries(table), MAPR, "triplet")
    assert result.losses == ("triplet", "b") and result.left_out == ("a",)
    assert math.isnan(result.friedman_p) and result.nemenyi is None  # 2 losses: no Friedman
    assert "; 2 losses: no Friedman test (it needs 3)." in render_across.answer(result)
    assert "Left out (no value on every dataset): a." in render_across.section(result)


def test_the_critical_difference_diagram_is_drawn(tmp_path):
    table = {f"d{i}": {"triplet": [0.5 + 0.01 * i], "a": [0.6], "b": [0.4 + 0.02 * i]}
             for i in range(4)}
    result = across_datasets(_summaries(table), MAPR, "triplet")
    figure = figures.critical_difference(result.mean_ranks, result.nemenyi,
                                         result.critical_difference, 0.05, "test")
    path = tmp_path / "cd.png"
    figure.savefig(path)
    assert path.stat().st_size > 5000
    texts = {t.get_text() for ax in figure.axes for t in ax.texts}
    assert any(t.startswith("a (") or t.endswith(") a") for t in texts), texts


# --- a store with a compare over several datasets ------------------------------------------

LOSSES = ("triplet", "contrastive", "arcface")
# dataset → loss → test/map_at_r per seed; contrastive best everywhere, arcface worst.
STORE = {"digits": {"triplet": [0.50, 0.52], "contrastive": [0.60, 0.62], "arcface": [0.40, 0.42]},
         "mnist": {"triplet": [0.70, 0.70], "contrastive": [0.75, 0.77], "arcface": [0.65, 0.61]},
         "fashion": {"triplet": [0.30, 0.32], "contrastive": [0.35, 0.33], "arcface": [0.20, 0.22]}}


def _compare(client, experiment, datasets) -> str:
    parent = client.create_run(experiment, tags={"losslab.compare": "true"}).info.run_id
    client.log_batch(parent, params=[Param("losses", ",".join(LOSSES)), Param("seeds", "2"),
                                     Param("epochs", "1"), Param("datasets", ",".join(datasets)),
                                     Param("imbalance", ",".join(str(10 * (i + 1)) for i in
                                                                 range(len(datasets))))])
    for dataset in datasets:
        for loss in LOSSES:
            for seed, value in enumerate(STORE[dataset][loss]):
                run = client.create_run(experiment, tags={
                    "mlflow.parentRunId": parent, "losslab.variant": loss,
                    "losslab.task": "retrieval"}).info.run_id
                client.log_batch(run, params=[Param("dataset", dataset), Param("seed", str(seed)),
                                              Param("loss", loss)],
                                 metrics=[Metric("test/map_at_r", value, 0, 1),
                                          Metric("val/map_at_r", value, 0, 1)])
                client.set_terminated(run, "FINISHED")
    client.set_terminated(parent, "FINISHED")
    return parent


@pytest.mark.slow
def test_a_report_over_datasets_from_the_store_alone(mlflow_store, capsys):
    client = mlflow.MlflowClient(mlflow_store)
    experiment = client.create_experiment("compare-datasets")
    three = _compare(client, experiment, ["mnist", "digits", "fashion"])
    report = build_report(client, three)
    assert list(report.by_dataset) == ["mnist", "digits", "fashion"]  # the parent's order
    result = report.across["retrieval"][0]
    assert result.mean_ranks == pytest.approx({"triplet": 2.0, "contrastive": 1.0,
                                               "arcface": 3.0})
    md = report.markdown
    assert md.startswith("Across 3 datasets (retrieval, test MAP@R): **contrastive** has the "
                         "best mean rank (1.00 of 3 losses)")
    assert "## Across datasets" in md and "| contrastive | 1.00 | 0.7600 (1) | 0.6100 (1) |" in md
    for dataset in ("mnist", "digits", "fashion"):  # each dataset's own table, as for one
        assert f"## Loss comparison on {dataset}" in md
    assert report.by_dataset["digits"]["retrieval"].reference == "triplet"
    # the parent's per-dataset long tail ("10,20,30" in its datasets' order) goes to each
    assert collect(client, three).only("digits").params["imbalance"] == "20"
    publish(client, report)
    artifacts = {a.path for a in client.list_artifacts(three)}
    assert {"report.md", "report.csv", "report_across.csv"} <= artifacts
    assert "figures/cd_retrieval_test_map_at_r.png" in {
        a.path for a in client.list_artifacts(three, "figures")}
    rows = list(csv.DictReader(io.StringIO(report.texts["report_across.csv"])))
    assert {r["loss"]: float(r["mean_rank"]) for r in rows} == {
        "triplet": 2.0, "contrastive": 1.0, "arcface": 3.0}
    summaries = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{three}' and "
                                                 "tags.`losslab.summary` = 'true'")
    assert len(summaries) == 9  # one per loss and dataset

    two = _compare(client, experiment, ["digits", "fashion"])
    md = build_report(client, two).markdown
    assert "With 2 datasets no difference can be significant" in md.splitlines()[0]
    # `make report` on it (python -m training.report): names the summary runs it logged
    assert report_main([f"parent={two}"]) == 0
    assert "one summary run per loss and dataset under it" in capsys.readouterr().out
