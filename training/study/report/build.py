"""One code path from the store to a report: `build_report` reads, `publish` logs to the parent.

`training.compare` calls both after its trainings; `python -m training.report` calls them on
any parent run in the store. Logging uses the client with the parent's run id, so a finished
(or failed) parent gets its report without being reopened.
"""

from __future__ import annotations

import dataclasses

import mlflow
import numpy as np
from matplotlib.figure import Figure

from training.study.report import figures, render
from training.study.report.collect import (
    CompareRuns,
    ReportError,
    collect,
    landscape_of,
    load_test_outputs,
    metric_history,
)
from training.study.report.summary import Stat, recall_per_class, summarize, winners

# Per-epoch curves drawn per task (what `train` logs at step = epoch).
CURVES = {
    "classification": ("val/loss", "val/accuracy", "val/balanced_accuracy", "val/macro_f1",
                       "val/ece"),
    "retrieval": ("train/loss", "val/precision_at_1", "val/recall_at_5", "val/r_precision",
                  "val/map_at_r"),
}


@dataclasses.dataclass
class Report:
    """Everything `publish` logs. `table`: task → loss → metric → Stat; `wins`: task →
    metric → winning loss or None; `figures`: artifact path → Figure."""

    parent_id: str
    markdown: str
    csv: str
    table: dict[str, dict[str, dict[str, Stat]]]
    wins: dict[str, dict[str, str | None]]
    figures: dict[str, Figure]


def build_report(client: mlflow.MlflowClient, parent_id: str) -> Report:
    """Read the parent's children back and build the tables and figures."""
    runs = collect(client, parent_id)
    table = summarize(runs)
    wins = winners(table)
    return Report(
        parent_id=parent_id,
        markdown=render.markdown(runs, table, wins),
        csv=render.csv_text(table, wins),
        table=table,
        wins=wins,
        figures=_figures(client, runs),
    )


def publish(client: mlflow.MlflowClient, report: Report) -> None:
    """Log `report.md`, `report.csv` and `figures/*.png` to the parent (replacing old ones)."""
    client.log_text(report.parent_id, report.markdown, "report.md")
    client.log_text(report.parent_id, report.csv, "report.csv")
    for path, figure in report.figures.items():
        client.log_figure(report.parent_id, figure, path)


def _by_variant(runs: CompareRuns, task: str) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for child in runs.finished(task):
        grouped.setdefault(child.variant, []).append(child)
    return grouped


def _figures(client: mlflow.MlflowClient, runs: CompareRuns) -> dict[str, Figure]:
    out: dict[str, Figure] = {}
    title = runs.params.get("dataset", runs.experiment)
    for task in runs.tasks():
        groups = _by_variant(runs, task)
        histories = {
            key: {v: [metric_history(client, c.run_id, key) for c in kids]
                  for v, kids in groups.items()}
            for key in CURVES[task]
        }
        if _has_values(histories):
            out[f"figures/curves_{task}.png"] = figures.curves(histories, f"{title} ({task})")
        map_at_r = {"val/map_at_r": histories.get("val/map_at_r", {})}
        if task == "retrieval" and _has_values(map_at_r):
            out["figures/val_map_at_r.png"] = figures.curves(map_at_r, f"{title}: val MAP@R")
        if task == "classification":
            out.update(_classification_figures(client, groups))
        landscapes = {}
        for variant, kids in groups.items():
            found = next((s for s in (landscape_of(client, c.run_id) for c in kids) if s), None)
            if found is not None:
                landscapes[variant] = found
        if landscapes:
            from training.landscape import side_by_side  # noqa: PLC0415 (only when present)

            out[f"figures/landscapes_{task}.png"] = side_by_side(
                landscapes, f"{title}: loss landscapes ({task}, lowest finished seed)")
    return out


def _has_values(histories: dict[str, dict[str, list[np.ndarray]]]) -> bool:
    return any(len(s) for per_loss in histories.values() for runs in per_loss.values()
               for s in runs)


def _classification_figures(client, groups) -> dict[str, Figure]:
    out: dict[str, Figure] = {}
    counted = [c for kids in groups.values() for c in kids if c.train_counts is not None]
    if counted:
        # Same split profile for every loss and seed (only which images, not how many,
        # depends on the seed): the first run's counts order the classes.
        counts = counted[0].train_counts
        recalls = {v: np.stack([recall_per_class(c.metrics, len(counts)) for c in kids])
                   for v, kids in groups.items()}
        out["figures/per_class_recall.png"] = figures.per_class_recall(recalls, counts)
    pooled = {}
    for variant, kids in groups.items():
        outputs = []
        for child in kids:
            try:
                outputs.append(load_test_outputs(client, child.run_id))
            except ReportError as exc:
                print(f"warning: reliability diagram of {variant} leaves out: {exc}")
        if outputs:
            pooled[variant] = (np.concatenate([p for p, _ in outputs]),
                               np.concatenate([y for _, y in outputs]))
    if pooled:
        out["figures/reliability.png"] = figures.reliability(pooled)
    return out
