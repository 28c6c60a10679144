"""One code path from the store to a report: `build_report` reads, `publish` logs to the parent.

`training.compare` calls both after its trainings; `python -m training.report` calls them on
any parent run in the store. Logging uses the client with the parent's run id, so a finished
(or failed) parent gets its report without being reopened.

What `publish` puts on the parent: artifacts `report.md`, `report.csv`, `figures/*.png`; the
markdown as the run's description (tag `mlflow.note.content`); and, because the MLflow UI
cannot average over seeds, metrics `<loss>/<metric>/mean` and `<loss>/<metric>/std` per loss
and metric (`focal/test/accuracy/mean`; characters MLflow refuses in a loss name, such as the
':' of an import path, become '_'). A rebuilt report logs them again: the latest value is shown.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time

import mlflow
import numpy as np
from matplotlib.figure import Figure
from mlflow.entities import Metric as MlflowMetric

from training.study.report import figures, render
from training.study.report.collect import (
    CompareRuns,
    ReportError,
    collect,
    landscape_of,
    load_test_outputs,
    metric_history,
    references,
)
from training.study.report.summary import Stat, TaskSummary, summarize

DESCRIPTION_TAG = "mlflow.note.content"  # the run description the MLflow UI shows
MAX_TAG_CHARS = 8000  # MLflow refuses longer tag values (MAX_TAG_VAL_LENGTH)
BATCH = 1000  # metrics per log_batch call (MLflow's limit)

# Per-epoch curves drawn per task (what `train` logs at step = epoch).
CURVES = {
    "classification": ("val/loss", "val/accuracy", "val/balanced_accuracy", "val/macro_f1",
                       "val/ece"),
    "retrieval": ("train/loss", "val/precision_at_1", "val/recall_at_5", "val/r_precision",
                  "val/map_at_r"),
}


@dataclasses.dataclass
class Report:
    """Everything `publish` logs. `summaries`: task → TaskSummary (stats, reference, paired
    comparisons); `figures`: artifact path → Figure."""

    parent_id: str
    markdown: str
    csv: str
    summaries: dict[str, TaskSummary]
    figures: dict[str, Figure]

    @property
    def table(self) -> dict[str, dict[str, dict[str, Stat]]]:
        """task → loss → metric key (`test/accuracy`) → Stat."""
        return {task: s.stats for task, s in self.summaries.items()}


def build_report(client: mlflow.MlflowClient, parent_id: str,
                 reference: str | None = None) -> Report:
    """Read the parent's children back and build the tables and figures.

    Args:
        reference: comma-separated reference losses, at most one per task; None: the
            compare's own `reference` param if it logged one, else each task's first listed
            loss (`collect.references`).
    """
    runs = collect(client, parent_id)
    if reference is None and runs.params.get("reference", "none") != "none":
        reference = runs.params["reference"]
    summaries = summarize(runs, references(runs, reference))
    return Report(
        parent_id=parent_id,
        markdown=render.markdown(runs, summaries),
        csv=render.csv_text(summaries),
        summaries=summaries,
        figures=_figures(client, runs),
    )


def publish(client: mlflow.MlflowClient, report: Report) -> None:
    """Log the report to the parent (artifacts replace older ones; see the module docstring)."""
    client.log_text(report.parent_id, report.markdown, "report.md")
    client.log_text(report.parent_id, report.csv, "report.csv")
    for path, figure in report.figures.items():
        client.log_figure(report.parent_id, figure, path)
    metrics = seed_metrics(report.summaries)
    now = int(time.time() * 1000)
    entities = [MlflowMetric(key, value, now, 0) for key, value in metrics.items()]
    for start in range(0, len(entities), BATCH):
        client.log_batch(report.parent_id, metrics=entities[start:start + BATCH])
    client.set_tag(report.parent_id, DESCRIPTION_TAG, description(report.markdown))


def metric_name(loss: str) -> str:
    """`loss` as one component of an MLflow metric name: anything but letters, digits and
    `_-. ` becomes '_' (the ':' of "pkg.mod:MyLoss" is refused on some platforms, a '/'
    would add a level)."""
    return re.sub(r"[^A-Za-z0-9_.\- ]", "_", loss)


def seed_metrics(summaries: dict[str, TaskSummary]) -> dict[str, float]:
    """`<loss>/<metric>/mean` and `/std` over seeds for every loss and metric with a value."""
    out = {}
    for summary in summaries.values():
        for loss, stats in summary.stats.items():
            for key, stat in stats.items():
                for which, number in (("mean", stat.mean), ("std", stat.std)):
                    if not math.isnan(number):
                        out[f"{metric_name(loss)}/{key}/{which}"] = number
    return out


def description(markdown: str) -> str:
    """The report as a run description, cut to MLflow's tag limit when longer."""
    if len(markdown) <= MAX_TAG_CHARS:
        return markdown
    tail = "\n\n… (cut here: the whole report is the run's report.md artifact)\n"
    return markdown[: MAX_TAG_CHARS - len(tail)] + tail


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


def _padded(recall: np.ndarray, classes: int) -> np.ndarray:
    """(classes,) recall, NaN-padded or cut (an older run that logged fewer classes)."""
    out = np.full(classes, np.nan)
    out[: min(classes, recall.size)] = recall[:classes]
    return out


def _classification_figures(client, groups) -> dict[str, Figure]:
    out: dict[str, Figure] = {}
    counted = [c for kids in groups.values() for c in kids if c.train_counts is not None]
    if counted and any(c.recall is not None for c in counted):
        # Same split profile for every loss and seed (only which images, not how many,
        # depends on the seed): the first run's counts order the classes.
        counts = counted[0].train_counts
        recalls = {v: np.stack([_padded(c.recall, counts.size) for c in kids
                                if c.recall is not None])
                   for v, kids in groups.items() if any(c.recall is not None for c in kids)}
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
