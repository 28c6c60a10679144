"""The report's question per loss: does it beat CE plus the best free fix? CE's fix is chosen
on val (never test), the loss's end-to-end test balanced accuracy is paired with it by seed,
Holm across losses (hand-made runs, no store)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from training.study.report import render
from training.study.report.collect import ChildRun, CompareRuns
from training.study.report.summary import against_free_fix


def child(variant, seed, **metrics):
    values = {k.replace("__", "/"): v for k, v in metrics.items()}
    return ChildRun(f"{variant}{seed}", variant, "classification", seed, "FINISHED", values,
                    None, None)


# CE: τ-norm is better on val (0.95 > 0.94), post-hoc better on test: τ-norm must be chosen.
CE = [child("ce", s, val__balanced_accuracy_posthoc=0.94, val__balanced_accuracy_tau_norm=0.95,
            test__balanced_accuracy_posthoc=0.99, test__balanced_accuracy_tau_norm=t,
            test__balanced_accuracy=0.90) for s, t in enumerate([0.950, 0.955, 0.945])]
LA = [child("logit_adjusted", s, test__balanced_accuracy=v)
      for s, v in enumerate([0.970, 0.972, 0.969])]
FOCAL = [child("focal", s, test__balanced_accuracy=v) for s, v in enumerate([0.951, 0.950, 0.95])]


def runs(*children):
    return CompareRuns("p", "e", {}, ("ce", "logit_adjusted", "focal"), tuple(children))


def test_the_fix_is_chosen_on_val_and_paired_by_seed():
    answers = against_free_fix(runs(*CE, *LA, *FOCAL))
    assert [a.loss for a in answers] == ["logit_adjusted", "focal"]
    assert {a.fix for a in answers} == {"τ-norm"}
    la, focal = answers
    ref = [0.950, 0.955, 0.945]
    diffs = np.subtract([0.970, 0.972, 0.969], ref)
    assert la.paired.n == 3 and la.paired.delta_mean == pytest.approx(diffs.mean())
    p_la = stats.ttest_rel([0.970, 0.972, 0.969], ref).pvalue
    p_focal = stats.ttest_rel([0.951, 0.950, 0.95], ref).pvalue
    assert la.paired.p_value == pytest.approx(p_la)
    # Holm over two losses: the smaller p doubled, the larger max(itself, that).
    low, high = sorted([p_la, p_focal])
    want = {p_la: min(1, 2 * low) if p_la == low else max(min(1, 2 * low), high)}
    assert la.paired.p_holm == pytest.approx(want[p_la])
    assert la.sentence().startswith("**logit_adjusted** beats ce + τ-norm")
    assert focal.sentence().startswith("focal does not beat ce + τ-norm")


def test_no_answer_without_ce_or_fixes():
    assert against_free_fix(runs(*LA)) == []
    plain = [child("ce", s, test__balanced_accuracy=0.9) for s in range(3)]
    assert against_free_fix(runs(*plain, *LA)) == []


def test_one_seed_is_too_few():
    (answer,) = against_free_fix(runs(CE[0], LA[0]))
    assert answer.paired.n == 1 and "too few" in answer.sentence()


def test_the_report_says_it_per_loss():
    lines = render._free_fix(runs(*CE, *LA, *FOCAL), "classification")
    assert sum(line.startswith("- ") for line in lines) == 2
    assert render._free_fix(runs(*CE, *LA), "retrieval") == []
