"""The report as text: a markdown table per task (printed and logged as `report.md`) and
the same numbers as CSV (`report.csv`: one row per loss, full precision).
"""

from __future__ import annotations

import csv
import io
import math

from training.study.report.summary import METRICS, TAIL_SHARE, Stat

TASK_NOTES = {
    "classification": "long-tailed training split (IR = {imbalance}); test split as shipped. "
    "Tail recall = mean test recall of the rarest {tail:.0%} of classes by training count.",
    "retrieval": "trained on the first half of the classes, queried on the held-out classes "
    "(leave-one-out over the test split).",
}
RULE = (
    "**bold** = clear winner: best mean, and its mean ± std interval does not overlap any other "
    "loss's interval (n ≥ 2 seeds each; lower is better for ECE and wall time). Otherwise: "
    "no clear winner. ± is the sample std over seeds (ddof = 1)."
)


def _cell(stat: Stat, digits: int) -> str:
    if stat.n == 0:
        return "–"
    spread = "–" if math.isnan(stat.std) else f"{stat.std:.{digits}f}"
    return f"{stat.mean:.{digits}f} ± {spread}"


def _digits(metric_name: str) -> int:
    return 1 if metric_name == "wall_seconds" else 4


def markdown(runs, table, wins) -> str:
    """Markdown report of a `CompareRuns`, its `summarize` table and `winners`."""
    p = runs.params
    lines = [
        f"# Loss comparison on {p.get('dataset', '?')}",
        "",
        f"Experiment `{runs.experiment}`, parent run `{runs.parent_id}`; "
        f"seeds: {p.get('seeds', '?')}, epochs per run: {p.get('epochs', '?')}.",
    ]
    for task, rows in table.items():
        metrics = METRICS[task]
        note = TASK_NOTES[task].format(imbalance=p.get("imbalance", "?"), tail=TAIL_SHARE)
        lines += ["", f"## {task}", "", note, ""]
        header = ["loss", "n"] + [m.label + (" ↓" if not m.higher_is_better else "")
                                  for m in metrics]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for variant, stats in rows.items():
            n = max(s.n for s in stats.values())
            cells = [variant, str(n)]
            for m in metrics:
                text = _cell(stats[m.name], _digits(m.name))
                cells.append(f"**{text}**" if wins[task][m.name] == variant else text)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for m in metrics:
            winner = wins[task][m.name]
            verdict = f"**{winner}**" if winner else "no clear winner"
            lines.append(f"- {m.label}: " + (verdict if len(rows) > 1 else "one loss only"))
    if not table:
        lines += ["", "No finished runs yet."]
    lines += ["", RULE]
    unfinished = [c for c in runs.children if not c.finished]
    if unfinished:
        lines += ["", f"Not counted (did not finish: {len(unfinished)}):"]
        lines += [f"- {c.variant} seed {c.seed}: {c.status}"
                  + (f" ({c.error})" if c.error else "") + f", run `{c.run_id}`"
                  for c in unfinished]
    return "\n".join(lines) + "\n"


def csv_text(table, wins) -> str:
    """One row per (task, loss): n, <metric>_mean, <metric>_std, ..., best_in (';'-joined)."""
    names = list(dict.fromkeys(m.name for task in table for m in METRICS[task]))
    columns = ["task", "loss", "n"] + [f"{n}_{s}" for n in names for s in ("mean", "std")]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*columns, "best_in"], lineterminator="\n")
    writer.writeheader()
    for task, rows in table.items():
        for variant, stats in rows.items():
            row = {"task": task, "loss": variant, "n": max(s.n for s in stats.values())}
            for name, stat in stats.items():
                row[f"{name}_mean"] = repr(stat.mean)
                row[f"{name}_std"] = repr(stat.std)
            row["best_in"] = ";".join(m for m, w in wins[task].items() if w == variant)
            writer.writerow(row)
    return out.getvalue()
