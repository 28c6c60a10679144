"""Report numbers: mean ± std over seeds, tail classes and tail recall, and what `collect`
derives from a run without a store: recall of older runs, the model output a loss took, the
reference of each task (hand-made values; no training, no MLflow). The paired statistics
are in test_report_stats.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.loss_catalog import loss_spec
from training.study.report.collect import (
    ChildRun,
    CompareRuns,
    ReportError,
    output_of,
    recall_from_metrics,
    references,
)
from training.study.report.summary import TAIL_RECALL, Stat, tail_classes, tail_recall, value

# --- Stat ------------------------------------------------------------------------------------


def test_stat_is_mean_and_sample_std():
    s = Stat.of([1.0, 2.0, 3.0, 4.0])
    # Deviations ±1.5, ±0.5: sum of squares 5, divided by n - 1 = 3.
    assert (s.mean, s.n) == (2.5, 4)
    assert s.std == pytest.approx(math.sqrt(5 / 3))


def test_stat_skips_missing_values_and_has_no_spread_for_one_seed():
    s = Stat.of([1.0, math.nan, 3.0])
    assert (s.mean, s.n) == (2.0, 2)
    assert s.std == pytest.approx(math.sqrt(2.0))
    single = Stat.of([0.7])
    assert (single.mean, single.n) == (0.7, 1) and math.isnan(single.std)
    empty = Stat.of([])
    assert empty.n == 0 and math.isnan(empty.mean)


# --- tail classes ----------------------------------------------------------------------------


def test_tail_is_the_rarest_30_percent():
    counts = [128, 101, 78, 60, 47, 36, 28, 21, 16, 13]  # digits at IR=10
    assert tail_classes(counts).tolist() == [9, 8, 7]


def test_tail_has_at_least_one_class_and_follows_counts_not_index():
    assert tail_classes([3, 1, 2]).tolist() == [1]  # floor(0.9) = 0 -> 1 class
    assert tail_classes([10, 20, 5, 40]).tolist() == [2]  # floor(1.2) = 1
    assert tail_classes([1, 2, 3, 4, 5, 6, 7]).tolist() == [0, 1]  # floor(2.1) = 2


def test_ties_go_to_the_higher_class_index():
    assert tail_classes([5] * 10).tolist() == [9, 8, 7]


def test_tail_recall_is_the_mean_recall_of_the_tail_classes():
    counts = np.array([50, 40, 30, 20, 10, 8, 6, 4, 2, 1])
    recall = np.arange(10) / 10
    assert tail_recall(recall, counts) == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    recall[9] = math.nan  # a class absent from the test split: left out
    assert tail_recall(recall, counts) == pytest.approx((0.8 + 0.7) / 2)
    assert tail_recall(recall[:8], counts) == pytest.approx(0.7)  # a shorter table: the same
    assert math.isnan(tail_recall(recall, None)) and math.isnan(tail_recall(None, counts))


# --- what collect derives from one run -------------------------------------------------------


def test_older_runs_give_their_recall_as_one_metric_per_class():
    metrics = {"test/accuracy": 0.9, "test/recall_class_0": 0.5, "test/recall_class_2": 0.25}
    recall = recall_from_metrics(metrics)
    assert recall[0] == 0.5 and math.isnan(recall[1]) and recall[2] == 0.25
    assert recall_from_metrics({"test/accuracy": 0.9}) is None
    assert recall_from_metrics({"test/recall_class_x": 1.0}) is None


def test_tail_recall_of_a_run_reads_its_recall_and_counts():
    counts = np.array([5, 4, 3, 2, 1, 1, 1, 1, 1, 1])
    child = ChildRun("r", "ce", "classification", 0, "FINISHED", {}, counts, None,
                     recall=np.linspace(0, 0.9, 10))
    assert value(child, TAIL_RECALL) == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    no_table = ChildRun("r", "ce", "classification", 0, "FINISHED", {}, counts, None)
    assert math.isnan(value(no_table, TAIL_RECALL))


@pytest.mark.parametrize(("variant", "params", "expected"), [
    ("ce", {}, "logits"),
    ("ldam_drw", {"head": "auto"}, "cosine_logits"),  # the entry asks for the cosine head
    ("ce", {"head": "cosine"}, "cosine_logits"),  # the run's head param decides
    ("ldam", {"head": "dense"}, "logits"),
    ("triplet_hard", {}, "embedding"),
    ("arcface", {"head": "auto"}, "proxy_cosines"),
])
def test_output_of_a_run(variant, params, expected):
    assert output_of(loss_spec(variant), params) == expected
    assert output_of(None, params) is None  # a loss that does not resolve here: unknown


def _compare(*children, listed=("ce", "focal", "triplet")):
    runs = [ChildRun(f"{v}{s}", v, task, s, status, {}, None, None)
            for v, task, s, status in children]
    return CompareRuns("p", "e", {}, listed, tuple(runs))


def test_references_default_to_the_first_listed_loss_with_a_finished_run():
    runs = _compare(("ce", "classification", 0, "FAILED"),
                    ("focal", "classification", 0, "FINISHED"),
                    ("triplet", "retrieval", 0, "FINISHED"))
    assert references(runs) == {"classification": "focal", "retrieval": "triplet"}
    runs = _compare(("ce", "classification", 0, "FINISHED"),
                    ("focal", "classification", 0, "FINISHED"))
    assert references(runs) == {"classification": "ce"}
    assert references(runs, "focal") == {"classification": "focal"}
    assert references(runs, " focal , triplet") == {"classification": "focal",
                                                    "retrieval": "triplet"}


def test_a_bad_reference_names_the_losses_of_the_compare():
    runs = _compare(("ce", "classification", 0, "FINISHED"),
                    ("focal", "classification", 0, "FINISHED"))
    with pytest.raises(ReportError, match="'poly' is not a loss of this compare; its losses: "
                                          "ce, focal, triplet"):
        references(runs, "poly")
    with pytest.raises(ReportError, match="two classification losses"):
        references(runs, "ce,focal")
