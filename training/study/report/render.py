"""The report as text: markdown (printed, logged as `report.md` and as the parent run's
description) and CSV (`report.csv`, one row per task, loss and metric, full precision).

CSV columns: task, loss, metric (the name as logged, e.g. `test/balanced_accuracy`; the
report's own `test/tail_recall`), n (seeds with a value), mean, std (ddof = 1), and versus the
task's reference loss: delta_mean, delta_ci_low, delta_ci_high (95 % t interval of the paired
difference loss − reference), p_value (two-sided paired t-test), p_holm (Holm across the losses
compared with the reference, per metric). Empty cell = no value: the reference's own rows, and
any row with fewer than 2 paired seeds.
"""

from __future__ import annotations

import csv
import io
import math

from training import metric_catalog
from training.study.report.summary import (
    ALPHA,
    TAIL_SHARE,
    Metric,
    Paired,
    Stat,
    TaskSummary,
    against_free_fix,
)

TASK_NOTES = {
    "classification": "long-tailed training split (IR = {imbalance}); test split as shipped. "
    "Tail recall = mean test recall of the rarest {tail:.0%} of classes by training count "
    "(from each run's per-class recall table).",
    "retrieval": "trained on the first half of the classes, queried on the held-out classes "
    "(leave-one-out over the test split).",
}
# What a loss takes from the model (its registry entry's `output`): when the losses of a task
# take different outputs, each loss off the task's plain output gets a note.
PLAIN_OUTPUT = {"classification": "logits", "retrieval": "embedding"}
HEAD_NOTES = {
    "cosine_logits": "{names} {differ} from the others only in {its} cosine classifier head "
    "(normalised features × normalised weights)",
    "proxy_cosines": "{names} {train} with learned class proxies on the same embedding; "
    "retrieval is evaluated on the embedding",
}
RULE = (
    "▲ / ▼ = better / worse than the task's reference loss (its first listed loss unless "
    "`reference=` names another): two-sided paired t-test over the seeds both finished (seed s "
    "gives every loss the same split and initial weights), p Holm-corrected across the losses "
    f"compared with the reference, per metric; p_holm < {ALPHA:g}. Lower is better where the "
    "header has ↓. ± is the sample std over seeds (ddof = 1); Δ = loss − reference with its 95 % "
    "t interval."
)
RECOMMENDED_SEEDS = 5


def _digits(metric: Metric) -> int:
    return 1 if metric.key == "time/wall_seconds" else 4


def _cell(stat: Stat, digits: int) -> str:
    if stat.n == 0:
        return "–"
    spread = "–" if math.isnan(stat.std) else f"{stat.std:.{digits}f}"
    return f"{stat.mean:.{digits}f} ± {spread}"


def _delta(paired: Paired, metric: Metric) -> str:
    """"+0.0850 [+0.0729, +0.0971] p 0.0032" (p_holm where the test gave one: every
    difference 0 gives none)."""
    d = _digits(metric)
    text = f"{paired.delta_mean:+.{d}f} [{paired.ci_low:+.{d}f}, {paired.ci_high:+.{d}f}]"
    return text + ("" if math.isnan(paired.p_holm) else f" p {paired.p_holm:.2g}")


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def markdown(runs, summaries: dict[str, TaskSummary], warnings: tuple[str, ...] = ()) -> str:
    """Markdown report of a `CompareRuns` and its `summarize` result. It opens with the answer
    (the MLflow UI shows a description's first lines only, before "Show more"): the winner of
    each task, then `warnings` (a compare that measured nothing), then the tables."""
    lines = [winner_line(summary, runs.params.get("dataset", "?"))
             for summary in summaries.values()]
    lines += [f"**Warning:** {w}" for w in warnings]
    lines += [""] if lines else []
    lines += dataset_section(runs, summaries)
    lines += ["", RULE]
    lines += unfinished(runs)
    return "\n".join(lines) + "\n"


def dataset_section(runs, summaries: dict[str, TaskSummary], level: int = 1) -> list[str]:
    """The tables of one dataset's compare, headed at markdown `level` (its tasks one below)."""
    p = runs.params
    lines = [
        f"{'#' * level} Loss comparison on {p.get('dataset', '?')}",
        "",
        f"Experiment `{runs.experiment}`, parent run `{runs.parent_id}`; "
        f"seeds: {p.get('seeds', '?')}, epochs per run: {p.get('epochs', '?')}.",
    ]
    for task, summary in summaries.items():
        note = TASK_NOTES.get(task, "").format(imbalance=p.get("imbalance", "?"), tail=TAIL_SHARE)
        lines += ["", f"{'#' * (level + 1)} {task}", "", note, "",
                  f"Reference: **{summary.reference}**.", ""]
        lines += _table(summary)
        lines += _tuning(p, summary)
        lines += _head_note(runs, summary)
        lines += _comparisons(summary)
        lines += _free_fix(runs, task)
    if not summaries:
        lines += ["", "No finished runs yet."]
    return lines


def unfinished(runs) -> list[str]:
    """The runs that did not finish, one line each (the report does not count them)."""
    left = [c for c in runs.children if not c.finished]
    if not left:
        return []
    where = len(runs.datasets()) > 1
    return ["", f"Not counted (did not finish: {len(left)}):"] + [
        f"- {c.variant} seed {c.seed}" + (f" on {c.dataset}" if where else "") + f": {c.status}"
        + (f" ({c.error})" if c.error else "") + f", run `{c.run_id}`" for c in left]


def _table(summary: TaskSummary) -> list[str]:
    header = ["loss", "n"] + [m.label + ("" if m.higher_is_better or not m.ranked else " ↓")
                              for m in summary.metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {m.key: summary.best(m) if len(summary.stats) > 1 else [] for m in summary.metrics}
    for loss, stats in summary.stats.items():
        name = f"{loss} (reference)" if loss == summary.reference else loss
        cells = [name, str(max(s.n for s in stats.values()))]
        for m in summary.metrics:
            mark = {"better": " ▲", "worse": " ▼"}.get(summary.verdict(loss, m), "")
            cell = _cell(stats[m.key], _digits(m))
            cells.append((f"**{cell}**" if loss in best[m.key] else cell) + mark)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def winner_line(summary: TaskSummary, dataset: str) -> str:
    """"**focal** is best on digits (classification) in balanced acc.: 0.9300 ± 0.0300 (n = 3);
    significantly better than the reference ce (Δ +0.1100, p_holm 0.0027)." — or that no
    difference is significant."""
    metric = summary.headline()
    best = summary.best(metric)
    if not best:
        return f"No {summary.task} loss has a test {metric.label} yet."
    loss = best[0]
    stat = summary.stats[loss][metric.key]
    d = _digits(metric)
    head = (f"**{loss}** is best on {dataset} ({summary.task}) in test {metric.label}: "
            f"{_cell(stat, d)} (n = {stat.n})")
    if len(best) > 1:
        head += f", tied with {', '.join(best[1:])}"
    if len(summary.stats) == 1:
        return head + "; the only loss, nothing to compare."
    if summary.reference not in summary.stats:
        return head + f"; the reference {summary.reference} has no finished run: no test."
    ref = summary.reference
    if loss != ref:
        paired = summary.paired[loss][metric.key]
        if summary.verdict(loss, metric) == "better":
            return head + (f"; significantly better than the reference {ref} "
                           f"(Δ {paired.delta_mean:+.{d}f}, p_holm {paired.p_holm:.2g}).")
        why = (f"p_holm {paired.p_holm:.2g} ≥ {ALPHA:g}" if not math.isnan(paired.p_holm)
               else f"{_seeds(paired.n)} paired: no test")
        quiet = not any(summary.verdict(o, metric) for o in summary.paired)
        return head + (f"; not significantly better than the reference {ref} ({why})"
                       + (f"; no difference in test {metric.label} is significant."
                          if quiet else "."))
    beaten = [(other, summary.paired[other][metric.key]) for other in summary.paired
              if summary.verdict(other, metric) == "worse"]
    if beaten:
        listed = ", ".join(f"{o} (p_holm {pr.p_holm:.2g})" for o, pr in beaten)
        return head + f"; it is the reference, significantly better than {listed}."
    return head + f"; it is the reference, and no difference from it is significant (p_holm < " \
        f"{ALPHA:g} for none)."


def _tuning(params: dict[str, str], summary: TaskSummary) -> list[str]:
    """A tuned compare: the budget and objective, then each loss's chosen hyperparameters
    (the parent's `tuned/<loss>/<param>` params that `training.compare` logs)."""
    trials = params.get("tune", "0")
    if trials in ("0", "none"):
        return []
    lines = ["", f"Tuned: {trials} trials per loss on `{metric_catalog.selection_metric(summary.task)}` "
             f"({params.get('tune_epochs', '?')} epochs per trial; shared settings tuned: "
             f"{params.get('tune_keys', 'none')}). Each loss's seeds train at its study's best:",
             "", "| loss | chosen hyperparameters |", "|---|---|"]
    for loss in summary.stats:
        prefix = f"tuned/{loss}/"
        chosen = sorted((k[len(prefix):], v) for k, v in params.items() if k.startswith(prefix))
        text = ", ".join(f"{k} = {_param(v)}" for k, v in chosen) or \
            params.get(f"tuned/{loss}", "not recorded")
        lines.append(f"| {loss} | {text} |")
    return lines


def _param(value: str) -> str:
    """A logged float to 4 significant digits ("0.0123456789" → "0.01235"); others as logged."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value else f"{number:.4g}"


def _head_note(runs, summary: TaskSummary) -> list[str]:
    """A sentence per model output other than the task's plain one, when outputs differ."""
    outputs: dict[str, list[str]] = {}
    for loss in summary.stats:
        output = next((c.output for c in runs.finished(summary.task)
                       if c.variant == loss and c.output), None)
        if output is not None:
            outputs.setdefault(output, []).append(loss)
    if len(outputs) < 2:
        return []
    lines = [""]
    for output, names in outputs.items():
        if output != PLAIN_OUTPUT.get(summary.task) and output in HEAD_NOTES:
            one = len(names) == 1
            lines.append("Heads: " + HEAD_NOTES[output].format(
                names=", ".join(names), differ="differs" if one else "differ",
                its="its" if one else "their", train="trains" if one else "train") + ".")
    return lines


def _comparisons(summary: TaskSummary) -> list[str]:
    """One row per loss, one column per metric: Δ versus the reference with its 95 % CI and
    p_holm, ▲ / ▼ where significant; then the warnings about seeds."""
    others = [loss for loss in summary.stats if loss != summary.reference]
    if not others:
        return ["", "One loss only: nothing to compare."]
    if summary.reference not in summary.stats:
        return ["", f"The reference {summary.reference} has no finished run: no comparison."]
    shown = [m for m in summary.metrics
             if any(summary.paired[loss][m.key].n for loss in others)]
    lines = ["", f"Versus {summary.reference}, paired by seed (Δ = loss − "
             f"{summary.reference} [95 % CI], p_holm):", "",
             "| loss | pairs | " + " | ".join(m.label for m in shown) + " |",
             "|" + "---|" * (len(shown) + 2)]
    few, wide = [], []
    for loss in others:
        cells = []
        for m in shown:
            paired = summary.paired[loss][m.key]
            mark = {"better": " ▲", "worse": " ▼"}.get(summary.verdict(loss, m), "")
            cells.append(("–" if paired.n < 2 else _delta(paired, m)) + mark)
            if not mark and paired.n >= 2 and paired.crosses_zero() and m.key.startswith(
                    "test/"):
                wide.append((loss, m.label, paired.n))
        pairs = max((summary.paired[loss][m.key].n for m in summary.metrics), default=0)
        lines.append(f"| {loss} | {pairs} | " + " | ".join(cells) + " |")
        if pairs < 3:
            few.append((loss, pairs))
    if few:
        listed = ", ".join(f"{loss} ({_seeds(n)})" for loss, n in few)
        lines += ["", f"Warning: fewer than 3 seeds paired with {summary.reference}: {listed}. "
                  "A paired t-test on so few seeds can hardly detect a difference."]
    if wide:
        by_loss: dict[str, list[str]] = {}
        for loss, label, _ in wide:
            by_loss.setdefault(loss, []).append(label)
        listed = ", ".join(f"{loss} ({', '.join(labels)})" for loss, labels in by_loss.items())
        advice = (f"run {RECOMMENDED_SEEDS} seeds (`make compare SEEDS={RECOMMENDED_SEEDS}`) to "
                  "narrow it" if min(n for *_, n in wide) < RECOMMENDED_SEEDS else
                  "the difference, if any, is below what these seeds resolve")
        lines += ["", f"The 95 % CI of Δ includes 0 for {listed}: {advice}."]
    return lines


def _free_fix(runs, task: str) -> list[str]:
    """Classification: one sentence per loss, does it beat CE plus the best free fix?"""
    answers = against_free_fix(runs, task) if task == "classification" else []
    if not answers:
        return []
    return ["", f"Does each loss beat ce + {answers[0].fix} (of the free fixes, the one with "
            "the higher val balanced accuracy on ce's runs)? Its end-to-end test balanced "
            "accuracy, paired by seed:",
            "", *(f"- {a.sentence()}" for a in answers)]


CSV_COLUMNS = ("task", "loss", "metric", "n", "mean", "std", "delta_mean", "delta_ci_low",
               "delta_ci_high", "p_value", "p_holm")


def number(x: float) -> str:
    return "" if math.isnan(x) else repr(float(x))


def csv_text(summaries: dict[str, TaskSummary]) -> str:
    """One row per (task, loss, metric) in table order; see the module docstring."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for task, summary in summaries.items():
        for loss, stats in summary.stats.items():
            for m in summary.metrics:
                s = stats[m.key]
                paired = summary.paired.get(loss, {}).get(m.key, Paired(0))
                writer.writerow([task, loss, m.key, s.n, number(s.mean), number(s.std),
                                 *(number(x) for x in (paired.delta_mean, paired.ci_low,
                                                        paired.ci_high, paired.p_value,
                                                        paired.p_holm))])
    return out.getvalue()
