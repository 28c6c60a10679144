"""Report numbers: mean ± std over seeds, tail classes, and the clear-winner rule, checked on
hand-made values (no training, no MLflow)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.study.report.summary import Stat, clear_winner, tail_classes, tail_recall


def stat(mean, std, n=3):
    return Stat(mean, std, n)


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


# --- the winner rule -------------------------------------------------------------------------


def test_winner_when_intervals_are_apart():
    # 0.90 - 0.01 = 0.89 > 0.85 + 0.01 = 0.86
    assert clear_winner({"ce": stat(0.85, 0.01), "focal": stat(0.90, 0.01)}) == "focal"


def test_no_winner_when_intervals_overlap():
    # 0.90 - 0.03 = 0.87 < 0.85 + 0.03 = 0.88
    assert clear_winner({"ce": stat(0.85, 0.03), "focal": stat(0.90, 0.03)}) is None


def test_touching_intervals_are_not_a_win():
    # 1.0 - 0.25 == 0.5 + 0.25 exactly (binary fractions): overlap at one point.
    assert clear_winner({"a": stat(1.0, 0.25), "b": stat(0.5, 0.25)}) is None


def test_lower_is_better_metrics_pick_the_smallest():
    stats = {"ce": stat(0.05, 0.01), "focal": stat(0.02, 0.005)}
    assert clear_winner(stats, higher_is_better=False) == "focal"
    # Same numbers read as higher-is-better: ce's interval [0.04, 0.06] is above [0.015, 0.025].
    assert clear_winner(stats, higher_is_better=True) == "ce"


def test_every_other_loss_counts_not_only_the_runner_up():
    # Runner-up b is far below, but c (lower mean, huge spread) reaches 0.95 > 0.89.
    stats = {"a": stat(0.90, 0.01), "b": stat(0.80, 0.01), "c": stat(0.70, 0.25)}
    assert clear_winner(stats) is None


def test_zero_spread_with_different_means_is_a_win():
    assert clear_winner({"a": stat(0.8, 0.0), "b": stat(0.7, 0.0)}) == "a"
    assert clear_winner({"a": stat(0.8, 0.0), "b": stat(0.8, 0.0)}) is None


def test_no_claim_without_two_seeds_or_two_losses():
    assert clear_winner({"a": stat(0.9, 0.0)}) is None
    assert clear_winner({"a": stat(0.9, math.nan, n=1), "b": stat(0.1, 0.01)}) is None
    assert clear_winner({}) is None


def test_losses_without_data_are_left_out():
    stats = {"a": stat(0.9, 0.01), "b": stat(0.8, 0.01), "c": Stat(math.nan, math.nan, 0)}
    assert clear_winner(stats) == "a"


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
    metrics = {f"test/recall_class_{c}": c / 10 for c in range(10)}
    assert tail_recall(metrics, counts) == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    del metrics["test/recall_class_9"]  # a class absent from the test split: left out
    assert tail_recall(metrics, counts) == pytest.approx((0.8 + 0.7) / 2)
    assert math.isnan(tail_recall(metrics, None))
