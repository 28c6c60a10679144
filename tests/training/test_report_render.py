"""Report text and figures from hand-made numbers: winners in bold, CSV round trip, figures
drawn from plain arrays (no training, no MLflow)."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from training.report import figures, render
from training.study.report.collect import ChildRun, CompareRuns
from training.study.report.summary import METRICS, Stat, winners


def _row(**means):
    """All classification metrics at 0.5 ± 0.1 (n=3) except the given (mean, std) pairs."""
    stats = {m.name: Stat(0.5, 0.1, 3) for m in METRICS["classification"]}
    stats.update({k: Stat(mean, std, 3) for k, (mean, std) in means.items()})
    return stats


@pytest.fixture
def report_parts():
    table = {"classification": {
        "ce": _row(accuracy=(0.80, 0.01), ece=(0.10, 0.05)),
        "focal": _row(accuracy=(0.90, 0.01), ece=(0.12, 0.05)),
    }}
    failed = ChildRun("abc", "focal", "classification", 3, "FAILED", {}, None, "ValueError: x")
    runs = CompareRuns("p1", "compare-digits", {"dataset": "digits", "seeds": "4",
                       "epochs": "2", "imbalance": "10.0"}, ("ce", "focal"), (failed,))
    return runs, table, winners(table)


def test_markdown_bolds_the_clear_winner_and_says_no_clear_winner_otherwise(report_parts):
    runs, table, wins = report_parts
    text = render.markdown(runs, table, wins)
    assert wins["classification"]["accuracy"] == "focal"
    assert wins["classification"]["ece"] is None
    focal_row = next(line for line in text.splitlines() if line.startswith("| focal |"))
    assert "**0.9000 ± 0.0100**" in focal_row
    assert "- accuracy: **focal**" in text
    assert "- ECE: no clear winner" in text
    assert "| ce | 3 | 0.8000 ± 0.0100 |" in text
    assert "focal seed 3: FAILED (ValueError: x), run `abc`" in text  # failures are listed
    assert "IR = 10.0" in text


def test_one_loss_makes_no_claim(report_parts):
    runs, table, _ = report_parts
    del table["classification"]["focal"]
    text = render.markdown(runs, table, winners(table))
    assert "- accuracy: one loss only" in text and "**" not in text.split("\n- ")[1]


def test_csv_has_one_row_per_loss_with_full_precision(report_parts):
    _, table, wins = report_parts
    table["classification"]["ce"]["macro_f1"] = Stat(1 / 3, math.nan, 1)
    rows = list(csv.DictReader(io.StringIO(render.csv_text(table, wins))))
    assert [r["loss"] for r in rows] == ["ce", "focal"]
    ce, focal = rows
    assert float(ce["accuracy_mean"]) == 0.80 and float(ce["accuracy_std"]) == 0.01
    assert float(ce["macro_f1_mean"]) == 1 / 3 and math.isnan(float(ce["macro_f1_std"]))
    assert focal["best_in"] == "accuracy" and ce["best_in"] == ""
    assert ce["n"] == "3" and ce["task"] == "classification"


# --- figures ---------------------------------------------------------------------------------


def test_curves_draw_one_panel_per_metric_with_mean_lines():
    histories = {
        "val/accuracy": {"ce": [np.array([0.1, 0.5]), np.array([0.3, 0.7])],
                         "focal": [np.array([0.2, 0.6, 0.9])]},  # a longer run: NaN-padded
        "val/loss": {"ce": [np.array([2.0, 1.0])], "focal": []},
        "val/ece": {"ce": [np.array([])]},  # never logged: no panel
    }
    figure = figures.curves(histories, "t")
    assert isinstance(figure, Figure)
    accuracy = figure.axes[0]
    assert [a.get_title() for a in figure.axes] == ["val/accuracy", "val/loss"]
    ce_line = accuracy.get_lines()[0]
    assert ce_line.get_ydata().tolist() == pytest.approx([0.2, 0.6])  # mean of the two seeds
    with pytest.raises(ValueError, match="at least one metric"):
        figures.curves({"val/loss": {"ce": []}}, "t")


def test_per_class_recall_orders_classes_head_to_tail():
    counts = np.array([5, 50, 20])
    recalls = {"ce": np.array([[0.1, 0.9, 0.5], [0.3, 0.7, 0.5]])}
    figure = figures.per_class_recall(recalls, counts)
    axes = figure.axes[0]
    labels = [t.get_text() for t in axes.get_xticklabels()]
    assert labels == ["1\n(n=50)", "2\n(n=20)", "0\n(n=5)"]
    heights = [bar.get_height() for bar in axes.patches]
    assert heights == pytest.approx([0.8, 0.5, 0.2])


def test_reliability_titles_carry_the_pooled_ece():
    # Two examples, confidence 0.9 (correct) and 0.6 (wrong): ECE = (|1-0.9| + |0-0.6|)/2.
    probs = np.array([[0.9, 0.1], [0.4, 0.6]])
    labels = np.array([0, 0])
    figure = figures.reliability({"ce": (probs, labels)})
    assert "ECE 0.3500" in figure.axes[0].get_title()
