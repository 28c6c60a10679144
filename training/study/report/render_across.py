"""The report of a compare over several datasets, as text: markdown and CSV.

Markdown: first the answer across datasets (per task and headline metric: the best mean rank,
Friedman's p and what so few datasets can show), then each dataset's winner line and warnings,
then the section across datasets (ranks, Friedman, Wilcoxon against the reference with Holm,
Nemenyi, the critical difference and its diagram), then each dataset's own tables as for one
dataset (`render.dataset_section`).

CSV: `render.csv_text`'s columns after a `dataset` column, one block per dataset; then
`across.csv` (`across_csv`): one row per (task, metric, loss) with the mean rank, each
dataset's mean, and the tests.
"""

from __future__ import annotations

import csv
import io
import math

from training.study.report import render
from training.study.report.across import Across, power_note
from training.study.report.summary import ALPHA, TaskSummary

METHOD = (
    "Across datasets (Demšar 2006): each loss's mean over its seeds on a dataset; ranks within "
    "each dataset (1 = best, ties averaged); Friedman's test over the losses (χ² "
    "approximation); each loss against the reference with a two-sided Wilcoxon signed-rank "
    "test on the per-dataset means, Holm-corrected across losses; Nemenyi's test for all "
    f"pairs, whose critical difference (α = {ALPHA:g}) is the mean-rank gap the diagram's bar "
    "shows. A loss without a value on every dataset is left out of these tests."
)


def figure_path(result: Across) -> str:
    """The artifact path of the result's critical-difference diagram."""
    metric = result.metric.key.replace("/", "_")
    return f"figures/cd_{result.task}_{metric}.png"


def _p(p: float) -> str:
    return "–" if math.isnan(p) else f"{p:.3g}"


def answer(result: Across) -> str:
    """One line: the best mean rank and Friedman's verdict, and the power note."""
    best = result.best()
    n, k = result.values.shape
    ranks = result.mean_ranks
    line = (f"Across {n} datasets ({result.task}, test {result.metric.label}): **{best[0]}** "
            f"has the best mean rank ({ranks[best[0]]:.2f} of {k} losses)")
    if len(best) > 1:
        line += f", tied with {', '.join(best[1:])}"
    if math.isnan(result.friedman_p):
        line += f"; {k} {'loss' if k == 1 else 'losses'}: no Friedman test (it needs 3)."
    else:
        word = "differ" if result.friedman_p < ALPHA else "do not differ significantly"
        line += f"; Friedman p {_p(result.friedman_p)}: the losses {word} in rank."
    note = power_note(n, k)
    return line + (f" {note}" if note else "")


def section(result: Across) -> list[str]:
    """The markdown of one task and metric across datasets."""
    n, k = result.values.shape
    arrow = "" if result.metric.higher_is_better else " (lower is better)"
    lines = ["", f"### {result.task}: test {result.metric.label}{arrow}", "",
             "| loss | mean rank | " + " | ".join(result.datasets) + " |",
             "|" + "---|" * (n + 2)]
    for j, loss in sorted(enumerate(result.losses), key=lambda jl: result.ranks[:, jl[0]].mean()):
        cells = [f"{result.values[i, j]:.4f} ({result.ranks[i, j]:g})" for i in range(n)]
        name = f"{loss} (reference)" if loss == result.reference else loss
        lines.append(f"| {name} | {result.ranks[:, j].mean():.2f} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: mean over seeds (rank within the dataset, 1 = best)."]
    if not math.isnan(result.friedman_p):
        lines += ["", f"Friedman: χ²_F = {result.friedman_statistic:.3f} ({k - 1} df), "
                  f"p = {_p(result.friedman_p)} over {n} datasets and {k} losses."]
    if result.wilcoxon or result.nemenyi is not None:
        lines += ["", f"Versus {result.reference}:", "",
                  "| loss | Wilcoxon p | p_holm | Nemenyi p |", "|---|---|---|---|"]
        for loss in result.losses:
            if loss == result.reference:
                continue
            p, p_holm = result.wilcoxon.get(loss, (math.nan, math.nan))
            nemenyi = (math.nan if result.nemenyi is None or result.reference not in
                       result.nemenyi.index else float(result.nemenyi.loc[loss, result.reference]))
            lines.append(f"| {loss} | {_p(p)} | {_p(p_holm)} | {_p(nemenyi)} |")
    if result.nemenyi is not None:
        lines += ["", f"Critical difference (Nemenyi, α = {ALPHA:g}): "
                  f"{result.critical_difference:.2f} in mean rank; diagram: "
                  f"`{figure_path(result)}`."]
    if result.left_out:
        lines += ["", f"Left out (no value on every dataset): {', '.join(result.left_out)}."]
    note = power_note(n, k)
    return lines + (["", note] if note else [])


def markdown(runs, by_dataset: dict[str, dict[str, TaskSummary]],
             across: dict[str, list[Across]], warnings: tuple[str, ...] = ()) -> str:
    """The whole report of a compare over several datasets (see the module docstring)."""
    results = [r for per_task in across.values() for r in per_task]
    lines = [answer(r) for r in results]
    lines += [render.winner_line(s, dataset) for dataset, per_task in by_dataset.items()
              for s in per_task.values()]
    lines += [f"**Warning:** {w}" for w in warnings]
    names = ", ".join(by_dataset)
    lines += ["", f"# Loss comparison on {len(by_dataset)} datasets: {names}", "",
              f"Experiment `{runs.experiment}`, parent run `{runs.parent_id}`; seeds: "
              f"{runs.params.get('seeds', '?')}, epochs per run: "
              f"{runs.params.get('epochs', '?')}.", "", "## Across datasets"]
    for result in results:
        lines += section(result)
    if not results:
        lines += ["", "No loss has a value on every dataset yet."]
    lines += ["", METHOD]
    for dataset, summaries in by_dataset.items():
        lines += [""] + render.dataset_section(runs.only(dataset), summaries, level=2)
    lines += ["", render.RULE]
    lines += render.unfinished(runs)
    return "\n".join(lines) + "\n"


def csv_text(by_dataset: dict[str, dict[str, TaskSummary]]) -> str:
    """`render.csv_text` of each dataset with the dataset as the first column."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("dataset", *render.CSV_COLUMNS))
    for dataset, summaries in by_dataset.items():
        rows = list(csv.reader(io.StringIO(render.csv_text(summaries))))[1:]
        writer.writerows([dataset, *row] for row in rows)
    return out.getvalue()


ACROSS_COLUMNS = ("task", "metric", "loss", "mean_rank", "wilcoxon_p", "wilcoxon_p_holm",
                  "nemenyi_p_vs_reference", "friedman_p", "critical_difference")


def across_csv(across: dict[str, list[Across]]) -> str:
    """One row per (task, metric, loss): the cross-dataset numbers, full precision, then one
    column per dataset (`mean:<dataset>`)."""
    results = [r for per_task in across.values() for r in per_task]
    datasets = list(dict.fromkeys(d for r in results for d in r.datasets))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*ACROSS_COLUMNS, *(f"mean:{d}" for d in datasets)))
    for r in results:
        for j, loss in enumerate(r.losses):
            p, p_holm = r.wilcoxon.get(loss, (math.nan, math.nan))
            nemenyi = (math.nan if r.nemenyi is None or r.reference not in r.nemenyi.index
                       or loss == r.reference else float(r.nemenyi.loc[loss, r.reference]))
            means = {d: r.values[i, j] for i, d in enumerate(r.datasets)}
            writer.writerow([r.task, r.metric.key, loss, *(render.number(x) for x in (
                r.ranks[:, j].mean(), p, p_holm, nemenyi, r.friedman_p, r.critical_difference)),
                *(render.number(means.get(d, math.nan)) for d in datasets)])
    return out.getvalue()
