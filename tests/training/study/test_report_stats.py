"""The report's statistics against hand computation: paired differences by seed, the 95 % t
interval, the paired t-test, Holm–Bonferroni, and the better/worse rule (no MLflow).

References are written out in NumPy. The t distribution's CDF has closed forms for small
degrees of freedom, used for both the p-values and the 0.975 quantiles:
  ν = 1 (Cauchy): F(t) = 1/2 + arctan(t)/π
  ν = 2:          F(t) = 1/2 + t / (2 √(t² + 2))
  ν = 4:          F(t) = 1/2 + (3/8) x (1 − t²/(12 (1 + t²/4))), x = t / √(1 + t²/4)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats  # the 0.975 quantile of ν = 4 only

from training.study.report.collect import ChildRun, CompareRuns
from training.study.report.summary import (
    METRICS,
    Metric,
    Paired,
    holm,
    summarize,
    verdict,
)


def t_cdf(t: float, df: int) -> float:
    if df == 1:
        return 0.5 + math.atan(t) / math.pi
    if df == 2:
        return 0.5 + t / (2 * math.sqrt(t * t + 2))
    if df == 4:
        x = t / math.sqrt(1 + t * t / 4)
        return 0.5 + 3 / 8 * x * (1 - t * t / (12 * (1 + t * t / 4)))
    raise ValueError(df)


T_975 = {  # solve F(t) = 0.975 with the closed forms above
    1: math.tan(math.pi * 0.475),
    2: math.sqrt(2 * 0.95**2 / (1 - 0.95**2)),
}


def paired_by_hand(x, ref):
    """(mean, ci_low, ci_high, p) of the paired differences, from the formulas."""
    d = np.asarray(x, float) - np.asarray(ref, float)
    n = d.size
    mean = d.sum() / n
    sd = math.sqrt(((d - mean) ** 2).sum() / (n - 1))
    se = sd / math.sqrt(n)
    t = mean / se
    p = 2 * (1 - t_cdf(abs(t), n - 1))
    return mean, p, se


def seeds(values):
    return dict(enumerate(values))


# --- one paired comparison -------------------------------------------------------------------


def test_three_seeds_match_the_formulas():
    ref = [0.80, 0.82, 0.84]
    x = [0.83, 0.86, 0.86]  # differences 0.03, 0.04, 0.02: mean 0.03, sd 0.01
    got = Paired.of(seeds(x), seeds(ref))
    mean, p, se = paired_by_hand(x, ref)
    assert got.n == 3
    assert got.delta_mean == pytest.approx(0.03, abs=1e-12) == pytest.approx(mean)
    assert se == pytest.approx(0.01 / math.sqrt(3))
    half = T_975[2] * se  # t(0.975, 2) = 4.3027
    assert (got.ci_low, got.ci_high) == pytest.approx((mean - half, mean + half), rel=1e-9)
    # t = 0.03 / (0.01 / √3) = 3√3; p = 1 − t / √(t² + 2) = 1 − √27 / √29
    assert got.p_value == pytest.approx(1 - math.sqrt(27 / 29), rel=1e-9)
    assert got.p_value == pytest.approx(p, rel=1e-9)
    assert math.isnan(got.p_holm)  # set by summarize, across losses


def test_two_seeds_use_the_cauchy_quantile():
    got = Paired.of(seeds([0.90, 0.91]), seeds([0.80, 0.82]))
    # d = 0.10, 0.09: mean 0.095, sd 0.01/√2, se 0.005, t = 19.
    assert got.delta_mean == pytest.approx(0.095)
    assert got.ci_high - got.delta_mean == pytest.approx(T_975[1] * 0.005, rel=1e-9)
    assert got.p_value == pytest.approx(1 - 2 * math.atan(19) / math.pi, rel=1e-9)


def test_five_seeds_against_the_nu_4_closed_form():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.6, 0.8, 5)
    x = ref + rng.normal(0.01, 0.02, 5)
    got = Paired.of(seeds(x), seeds(ref))
    mean, p, se = paired_by_hand(x, ref)
    half = stats.t.ppf(0.975, 4) * se
    assert t_cdf(stats.t.ppf(0.975, 4), 4) == pytest.approx(0.975)  # the quantile is right
    assert (got.delta_mean, got.ci_low, got.ci_high) == pytest.approx(
        (mean, mean - half, mean + half), rel=1e-9)
    assert got.p_value == pytest.approx(p, rel=1e-9)


def test_pairs_follow_the_seed_not_the_order_and_need_both_runs():
    # Seed 3 of the loss has no reference run, seed 0 of the reference none of the loss.
    values = {2: 0.70, 1: 0.65, 3: 0.99}
    reference = {0: 0.10, 1: 0.60, 2: 0.64}
    got = Paired.of(values, reference)
    assert got.n == 2  # seeds 1 and 2: differences 0.05, 0.06
    assert got.delta_mean == pytest.approx(0.055)


@pytest.mark.parametrize(("values", "reference"), [
    ({0: 0.9}, {0: 0.8}),  # one pair
    ({0: 0.9, 1: math.nan}, {0: 0.8, 1: 0.7}),  # seed 1 never logged the metric
    ({0: 0.9, 1: 0.8}, {}),  # no reference run at all
])
def test_fewer_than_two_pairs_give_no_statistics(values, reference):
    got = Paired.of(values, reference)
    assert got.n < 2
    assert all(math.isnan(v) for v in (got.delta_mean, got.ci_low, got.ci_high, got.p_value))


def test_identical_runs_give_no_p_value():
    got = Paired.of(seeds([0.5, 0.6, 0.7]), seeds([0.5, 0.6, 0.7]))
    assert got.delta_mean == 0 and math.isnan(got.p_value) and not got.crosses_zero()


# --- Holm ------------------------------------------------------------------------------------


def test_holm_by_hand():
    # Sorted 0.01, 0.03, 0.04 (m = 3): 3·0.01 = 0.03, 2·0.03 = 0.06, max(0.06, 1·0.04) = 0.06.
    assert holm([0.04, 0.01, 0.03]).tolist() == pytest.approx([0.06, 0.03, 0.06])
    # Capped at 1; NaN (no test) neither counts in m nor changes.
    got = holm([0.5, math.nan, 0.2])
    assert got[0] == pytest.approx(min(1.0, max(2 * 0.2, 0.5)))
    assert math.isnan(got[1]) and got[2] == pytest.approx(0.4)
    assert holm([0.9, 0.8]).tolist() == [1.0, 1.0]
    assert holm([0.02]).tolist() == [0.02]  # one test: unchanged
    assert holm([]).size == 0


def test_holm_against_a_slow_loop_over_every_rank():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.2, 7)
    m = p.size
    order = np.argsort(p)
    expected = np.empty(m)
    for rank, i in enumerate(order):  # the definition: max over the ranks up to this one
        expected[i] = min(1.0, max((m - j) * p[order[j]] for j in range(rank + 1)))
    assert holm(p) == pytest.approx(expected)


# --- the better/worse rule -------------------------------------------------------------------

ACC = Metric("test/accuracy", "accuracy")
ECE = Metric("test/ece", "ECE", higher_is_better=False)


def test_verdict_respects_the_direction_of_the_metric():
    up = Paired(3, 0.02, 0.01, 0.03, 0.01, 0.01)
    down = Paired(3, -0.02, -0.03, -0.01, 0.01, 0.01)
    assert (verdict(up, ACC), verdict(down, ACC)) == ("better", "worse")
    assert (verdict(up, ECE), verdict(down, ECE)) == ("worse", "better")  # ECE: lower wins


def test_verdict_needs_the_holm_p_below_005():
    assert verdict(Paired(3, 0.02, 0.01, 0.03, 0.01, 0.05), ACC) is None  # not below
    assert verdict(Paired(3, 0.02, 0.01, 0.03, 0.01, 0.049), ACC) == "better"
    assert verdict(Paired(3, 0.02, 0.01, 0.03, 0.01), ACC) is None  # no Holm p yet
    assert verdict(Paired(1), ACC) is None and verdict(None, ACC) is None


# --- summarize: a whole task ----------------------------------------------------------------


def _runs(values: dict[str, list[float]], key="test/accuracy", task="classification"):
    children = tuple(
        ChildRun(f"{loss}{s}", loss, task, s, "FINISHED", {key: v, "time/wall_seconds": 10.0},
                 None, None)
        for loss, per_seed in values.items() for s, v in enumerate(per_seed))
    return CompareRuns("p", "e", {}, tuple(values), children)


REF = [0.5, 0.6, 0.7]
HOLM_CASE = {  # accuracy per seed; differences to ce chosen for their raw p-values
    "ce": REF,
    "a": [r + d for r, d in zip(REF, [0.018, 0.028, 0.038], strict=True)],  # p = 0.0400
    "b": [r + d for r, d in zip(REF, [0.02, 0.03, 0.04], strict=True)],  # p = 0.0351
    "c": [r + d for r, d in zip(REF, [0.10, 0.11, 0.12], strict=True)],  # p = 0.0027
}


def test_holm_turns_two_raw_significant_results_into_no_difference():
    summary = summarize(_runs(HOLM_CASE), {"classification": "ce"})["classification"]
    assert summary.reference == "ce" and "ce" not in summary.paired
    raw = {loss: summary.paired[loss]["test/accuracy"].p_value for loss in "abc"}
    # By hand (ν = 2): t = mean/(sd/√3); p = 1 − t/√(t² + 2).
    for loss, (mean, sd) in {"a": (0.028, 0.01), "b": (0.03, 0.01), "c": (0.11, 0.01)}.items():
        t = mean / (sd / math.sqrt(3))
        assert raw[loss] == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-6), loss
    assert raw["a"] < 0.05 and raw["b"] < 0.05  # uncorrected, both would count
    holm_p = {loss: summary.paired[loss]["test/accuracy"].p_holm for loss in "abc"}
    # m = 3, sorted c, b, a: 3 p_c; max(3 p_c, 2 p_b); max(that, p_a).
    assert holm_p["c"] == pytest.approx(3 * raw["c"])
    assert holm_p["b"] == pytest.approx(2 * raw["b"])
    assert holm_p["a"] == pytest.approx(max(2 * raw["b"], raw["a"]))
    acc = METRICS["classification"][0]
    assert [summary.verdict(loss, acc) for loss in "abc"] == [None, None, "better"]


def test_holm_counts_only_the_losses_of_one_metric_and_one_reference():
    summary = summarize(_runs({"ce": HOLM_CASE["ce"], "b": HOLM_CASE["b"]}),
                        {"classification": "ce"})["classification"]
    only = summary.paired["b"]["test/accuracy"]
    assert only.p_holm == only.p_value < 0.05  # one comparison: Holm changes nothing
    assert summary.verdict("b", METRICS["classification"][0]) == "better"
    # The wall time (equal for all) has no p-value and does not count in m.
    assert math.isnan(summary.paired["b"]["time/wall_seconds"].p_holm)


def test_another_reference_flips_the_sign_and_the_verdict():
    summary = summarize(_runs({"ce": HOLM_CASE["ce"], "c": HOLM_CASE["c"]}),
                        {"classification": "c"})["classification"]
    paired = summary.paired["ce"]["test/accuracy"]
    assert paired.delta_mean == pytest.approx(-0.11)
    assert summary.verdict("ce", METRICS["classification"][0]) == "worse"


def test_optional_metrics_are_columns_only_when_logged():
    runs = _runs({"ce": [0.5, 0.6], "focal": [0.6, 0.7]}, key="test/few_shot_accuracy")
    keys = [m.key for m in summarize(runs, {"classification": "ce"})["classification"].metrics]
    assert "test/few_shot_accuracy" in keys
    assert "test/many_shot_accuracy" not in keys and "test/balanced_accuracy_posthoc" not in keys
    assert "test/accuracy" in keys  # the standard columns stay, even when empty
