"""Report text and figures from hand-made runs: the markdown's table, verdicts, head notes and
warnings; the CSV's rows and round trip; figures drawn from plain arrays (no training, no
MLflow)."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from training.study.report import figures, render
from training.study.report.collect import ChildRun, CompareRuns
from training.study.report.summary import summarize

PARAMS = {"dataset": "digits", "seeds": "3", "epochs": "2", "imbalance": "10.0"}


def _child(loss, seed, metrics, *, output="logits", task="classification", status="FINISHED"):
    return ChildRun(f"{loss}-{seed}", loss, task, seed, status, metrics, None, None,
                    output=output)


def _compare(per_loss, *, extra=(), task="classification", outputs=None):
    """per_loss: loss → metric key → values per seed (seed = position)."""
    outputs = outputs or {}
    children = [
        _child(loss, seed, {k: v[seed] for k, v in metrics.items()},
               output=outputs.get(loss, "logits" if task == "classification" else "embedding"),
               task=task)
        for loss, metrics in per_loss.items()
        for seed in range(len(next(iter(metrics.values()))))
    ]
    return CompareRuns("p1", "compare-digits", PARAMS, tuple(per_loss), (*children, *extra))


def _report(runs, reference=None):
    task = runs.tasks()[0]
    summaries = summarize(runs, {task: reference or runs.variants[0]})
    return summaries, render.markdown(runs, summaries), render.csv_text(summaries)


# ce vs focal over 3 seeds: focal clearly better in accuracy (differences 0.10, 0.11, 0.12),
# worse in ECE (+0.05, +0.06, +0.04), equal within noise in macro-F1 (−0.01, +0.02, −0.005).
THREE = {
    "ce": {"test/accuracy": [0.80, 0.82, 0.84], "test/ece": [0.10, 0.12, 0.11],
           "test/macro_f1": [0.70, 0.70, 0.70], "time/wall_seconds": [10.0, 11.0, 12.0]},
    "focal": {"test/accuracy": [0.90, 0.93, 0.96], "test/ece": [0.15, 0.18, 0.15],
              "test/macro_f1": [0.69, 0.72, 0.695], "time/wall_seconds": [10.5, 11.0, 12.5]},
}


def _line(text, start):
    return next(line for line in text.splitlines() if line.startswith(start))


def test_markdown_marks_only_holm_significant_differences():
    failed = _child("focal", 3, {}, status="FAILED")
    summaries, text, _ = _report(_compare(THREE, extra=(failed,)))
    assert "Reference: **ce**." in text
    # The best mean of each column is bold: accuracy, macro-F1 focal; ECE, wall time ce.
    assert "| ce (reference) | 3 | 0.8200 ± 0.0200 | – | 0.7000 ± 0.0000 | **0.1100 ± 0.0100** |" \
        in text
    focal_row = _line(text, "| focal | 3 |")
    assert "**0.9300 ± 0.0300** ▲" in focal_row  # accuracy up: better
    assert "| 0.1600 ± 0.0173 ▼" in focal_row  # ECE up: worse (lower is better)
    assert "**0.7017 ± 0.0161** |" in focal_row  # macro-F1: best, no mark
    assert "**10.0" not in focal_row and "| **11.0 ± 1.0** |" in _line(text, "| ce (ref")
    # Accuracy: d = 0.10, 0.11, 0.12 → t = 0.11/(0.01/√3), p = 1 − t/√(t² + 2) = 0.0027;
    # ECE: d = 0.05, 0.06, 0.04 → t = 0.05/(0.01/√3), p = 0.013 (one loss: Holm = raw).
    assert "| loss | pairs | accuracy | macro-F1 | ECE | wall s/run |" in text
    assert _line(text, "| focal | 3 | +") == (
        "| focal | 3 | +0.1100 [+0.0852, +0.1348] p 0.0027 ▲ | "
        "+0.0017 [-0.0383, +0.0416] p 0.87 | +0.0500 [+0.0252, +0.0748] p 0.013 ▼ | "
        "+0.3 [-0.4, +1.1] p 0.18 |")
    assert "focal seed 3: FAILED, run `focal-3`" in text  # failures are listed
    assert "IR = 10.0" in text and "clear winner" not in text


def test_markdown_verdicts_carry_the_hand_computed_interval():
    summaries, text, _ = _report(_compare(THREE))
    # Accuracy differences 0.10, 0.11, 0.12: mean 0.11, sd 0.01, t(0.975, 2) = 4.3027.
    half = math.sqrt(2 * 0.95**2 / (1 - 0.95**2)) * 0.01 / math.sqrt(3)
    assert f"[{0.11 - half:+.4f}, {0.11 + half:+.4f}]" in _line(text, "| focal | 3 | +")


def test_holm_changes_what_the_markdown_says():
    ref = [0.5, 0.6, 0.7]
    shifted = {  # raw p: a 0.040, b 0.035 (both < 0.05), c 0.0027; Holm: a, b 0.070
        "a": [0.018, 0.028, 0.038], "b": [0.02, 0.03, 0.04], "c": [0.10, 0.11, 0.12]}
    per_loss = {"ce": {"test/accuracy": ref}} | {
        loss: {"test/accuracy": [r + d for r, d in zip(ref, ds, strict=True)]}
        for loss, ds in shifted.items()}
    _, text, _ = _report(_compare(per_loss))
    assert _line(text, "| c | 3 | +").endswith(" ▲ |")
    for loss in "ab":
        line = _line(text, f"| {loss} | 3 | +")
        assert line.endswith(" p 0.07 |") and "▲" not in line


def test_few_seeds_warn_and_a_zero_crossing_ci_recommends_five():
    two = {loss: {k: v[:2] for k, v in m.items()} for loss, m in THREE.items()}
    _, text, _ = _report(_compare(two))
    assert "Warning: fewer than 3 seeds paired with ce: focal (2 seeds)." in text
    # macro-F1 differences −0.01, +0.02: the interval contains 0.
    assert "The 95 % CI of Δ includes 0 for focal (macro-F1, ECE): " in text
    assert "run 5 seeds (`make compare SEEDS=5`)" in text
    _, text3, _ = _report(_compare(THREE))
    assert "Warning: fewer than 3" not in text3
    assert "includes 0 for focal (macro-F1): " in text3  # wall time: no advice on seeds


def test_one_seed_gives_no_statistics_and_says_so():
    one = {loss: {k: v[:1] for k, v in m.items()} for loss, m in THREE.items()}
    _, text, table = _report(_compare(one))
    assert _line(text, "| focal | 1 | –") == "| focal | 1 | – | – | – | – |"
    assert "▲" not in text.split("Versus")[0] and "▼" not in text.split("Versus")[0]
    row = next(r for r in csv.DictReader(io.StringIO(table)) if r["loss"] == "focal")
    assert row["n"] == "1" and row["std"] == "" and row["delta_mean"] == "" == row["p_holm"]


def test_one_loss_makes_no_claim():
    _, text, _ = _report(_compare({"ce": THREE["ce"]}))
    assert "One loss only: nothing to compare." in text and "Versus" not in text


def test_a_reference_without_runs_compares_nothing():
    runs = _compare({"focal": THREE["focal"]})
    runs = CompareRuns(runs.parent_id, runs.experiment, runs.params, ("ce", "focal"),
                       runs.children)
    summaries = summarize(runs, {"classification": "ce"})
    text = render.markdown(runs, summaries)
    assert "The reference ce has no finished run: no comparison." in text


def test_a_tuned_compare_reports_its_budget_and_each_losss_chosen_hyperparameters():
    runs = _compare(THREE)
    tuned = {**PARAMS, "tune": "10", "tune_epochs": "3", "tune_keys": "l2",
             "tuned/ce": "defaults (no search space)", "tuned/focal/gamma": "1.23456789",
             "tuned/focal/l2": "1e-05", "tuned/focal/from_logits": "True"}
    runs = CompareRuns(runs.parent_id, runs.experiment, tuned, runs.variants, runs.children)
    _, text, _ = _report(runs)
    assert ("Tuned: 10 trials per loss on `val/balanced_accuracy` (3 epochs per trial; shared "
            "settings tuned: l2). Each loss's seeds train at its study's best:") in text
    assert "| ce | defaults (no search space) |" in text
    assert "| focal | from_logits = True, gamma = 1.235, l2 = 1e-05 |" in text
    _, untuned, _ = _report(_compare(THREE))
    assert "Tuned:" not in untuned and "chosen hyperparameters" not in untuned


def test_heads_note_names_the_losses_with_another_output():
    per_loss = {loss: THREE["ce"] for loss in ("ce", "focal", "ldam_drw")}
    _, text, _ = _report(_compare(per_loss, outputs={"ldam_drw": "cosine_logits"}))
    assert ("Heads: ldam_drw differs from the others only in its cosine classifier head "
            "(normalised features × normalised weights).") in text
    _, same, _ = _report(_compare(per_loss))
    assert "Heads:" not in same


def test_heads_note_for_proxy_losses_in_retrieval():
    retrieval = {"test/map_at_r": [0.3, 0.4], "test/precision_at_1": [0.9, 0.91]}
    names = ("triplet_hard", "arcface", "cosface", "proxy_anchor")
    runs = _compare({loss: retrieval for loss in names}, task="retrieval",
                    outputs=dict.fromkeys(names[1:], "proxy_cosines"))
    _, text, _ = _report(runs)
    assert ("Heads: arcface, cosface, proxy_anchor train with learned class proxies on the "
            "same embedding; retrieval is evaluated on the embedding.") in text
    assert "| P@1 | R@5 | R-precision | MAP@R | wall s/run ↓ |" in text


def test_classification_columns_follow_what_was_logged():
    per_loss = {loss: {**m, "test/balanced_accuracy_posthoc": [0.8, 0.8, 0.8],
                       "test/medium_shot_accuracy": [0.9, 0.9, 0.9],
                       "test/few_shot_accuracy": [0.6, 0.6, 0.6]} for loss, m in THREE.items()}
    _, text, _ = _report(_compare(per_loss))
    header = _line(text, "| loss | n |")
    assert header == ("| loss | n | accuracy | balanced acc. | balanced acc. post-hoc | "
                      "macro-F1 | ECE ↓ | tail recall | medium-shot acc. | few-shot acc. | "
                      "wall s/run ↓ |")  # many-shot: no class has > 100 images, not logged


def test_csv_is_one_row_per_loss_and_metric_with_full_precision():
    summaries, _, table = _report(_compare(THREE))
    rows = list(csv.DictReader(io.StringIO(table)))
    assert list(rows[0]) == ["task", "loss", "metric", "n", "mean", "std", "delta_mean",
                             "delta_ci_low", "delta_ci_high", "p_value", "p_holm"]
    metrics = [m.key for m in summaries["classification"].metrics]
    assert [(r["loss"], r["metric"]) for r in rows] == [
        (loss, key) for loss in ("ce", "focal") for key in metrics]
    by = {(r["loss"], r["metric"]): r for r in rows}
    ce = by["ce", "test/accuracy"]
    assert (ce["task"], ce["n"]) == ("classification", "3")
    assert float(ce["mean"]) == np.mean([0.80, 0.82, 0.84])
    assert [ce[k] for k in ("delta_mean", "delta_ci_low", "delta_ci_high", "p_value",
                            "p_holm")] == [""] * 5  # the reference's own rows
    focal = by["focal", "test/accuracy"]
    paired = summaries["classification"].paired["focal"]["test/accuracy"]
    assert float(focal["delta_mean"]) == paired.delta_mean  # repr: no digit lost
    assert float(focal["p_holm"]) == paired.p_holm and float(focal["p_value"]) == paired.p_value
    assert by["focal", "test/balanced_accuracy"]["n"] == "0"  # never logged: an empty row
    assert float(by["focal", "time/wall_seconds"]["mean"]) == np.mean([10.5, 11.0, 12.5])


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


# --- the winner first, and a compare that measured nothing (issue 23) -------------------------


def _balanced(per_loss):
    return {loss: {"test/balanced_accuracy": v} for loss, v in per_loss.items()}


def test_the_first_line_names_the_winner_and_its_significance():
    # focal − ce = 0.10, 0.11, 0.12: p = 0.0027 (as above); one loss compared, Holm = raw.
    runs = _compare(_balanced({"ce": [0.50, 0.60, 0.70], "focal": [0.60, 0.71, 0.82]}))
    _, text, _ = _report(runs)
    assert text.splitlines()[0] == (
        "**focal** is best on digits (classification) in test balanced acc.: 0.7100 ± 0.1100 "
        "(n = 3); significantly better than the reference ce (Δ +0.1100, p_holm 0.0027).")
    assert text.splitlines()[2] == "# Loss comparison on digits"


def test_the_first_line_says_when_no_difference_is_significant():
    # focal: sd √(0.0248/2) = 0.1114; focal − ce = 0.01, −0.01, 0.03: mean 0.01, sd 0.02,
    # t = √3/2, p = 1 − t/√(t² + 2) = 0.48.
    _, text, _ = _report(_compare(_balanced({"ce": [0.5, 0.6, 0.7],
                                             "focal": [0.51, 0.59, 0.73]})))
    assert text.splitlines()[0] == (
        "**focal** is best on digits (classification) in test balanced acc.: 0.6100 ± 0.1114 "
        "(n = 3); not significantly better than the reference ce (p_holm 0.48 ≥ 0.05); "
        "no difference in test balanced acc. is significant.")
    # The reference best, the other loss significantly worse (differences −0.10, −0.11, −0.12).
    _, text, _ = _report(_compare(_balanced({"ce": [0.60, 0.71, 0.82],
                                             "focal": [0.5, 0.6, 0.7]})))
    assert text.splitlines()[0].endswith(
        "; it is the reference, significantly better than focal (p_holm 0.0027).")


def test_a_compare_at_chance_or_flat_warns_with_the_likely_cause():
    from training.study.report.build import measured_nothing

    counts = np.array([10] * 10)  # 10 classes: chance 0.1
    children = [ChildRun(f"r{i}", loss, "classification", i, "FINISHED", {}, counts, None)
                for i, loss in enumerate(["ce", "focal"])]
    runs = CompareRuns("p1", "compare-digits", PARAMS, ("ce", "focal"), tuple(children))
    at_chance = {"r0": np.array([0.119, 0.11, 0.10]), "r1": np.array([0.2, 0.15, 0.081])}
    warned = measured_nothing(runs, "classification", at_chance)
    assert len(warned) == 2  # last values 0.10, 0.081: within 0.02 of 0.1; never above epoch 1
    assert warned[0].startswith("classification: every run ended at chance on "
                                "val/balanced_accuracy (within 0.02 of 1/10 = 0.1000): this "
                                "compare measured nothing; likely cause: too few epochs (2)")
    assert warned[1].startswith("classification: every run did not improve "
                                "val/balanced_accuracy after epoch 1: this compare measured")
    # One run learned (0.1 → 0.5): the other is named, no "measured nothing".
    partly = measured_nothing(runs, "classification", {"r0": at_chance["r0"],
                                                       "r1": np.array([0.1, 0.5])})
    assert [w.split(":")[1] for w in partly] == [
        " 1 of 2 runs ended at chance on val/balanced_accuracy (within 0.02 of 1/10 = 0.1000) "
        "(ce seed 0)", " 1 of 2 runs did not improve val/balanced_accuracy after epoch 1 (ce seed 0)"]
    # 0.121 is just outside the margin: only "did not improve" (0.3 at epoch 1).
    assert [w.split(":")[1] for w in measured_nothing(runs, "classification", {
        "r0": np.array([0.3, 0.121]), "r1": np.array([0.3, 0.2])})] == [
        " every run did not improve val/balanced_accuracy after epoch 1"]
    text = render.markdown(runs, {}, tuple(warned))
    assert text.splitlines()[0] == f"**Warning:** {warned[0]}"
