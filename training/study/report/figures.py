"""The compare report's figures, drawn by `training.plots` with the functions that draw a
run's own figures; here each loss's seeds are pooled:

- `curves`: per metric, one panel; per loss, the mean over seeds and the min–max band.
- `per_class_recall`: loss name → (seeds, C) recall; bar = mean, whisker = min–max.
- `reliability`: one diagram per loss, its seeds' test outputs concatenated.
- `of_compare`: all of the above for one dataset's compare, read from the store.
- `critical_difference`: losses on the mean-rank axis across datasets, joined where Nemenyi
  cannot separate them (Demšar 2006; drawn by scikit-posthocs), with the CD as a bar.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import scikit_posthocs as sp
from matplotlib.figure import Figure

from training import metric_catalog, plots
from training.plots import curves, per_class_recall
from training.plots.classification import BINS
from training.plots.figure import new_figure
from training.study.report.collect import (
    CompareRuns,
    ReportError,
    landscape_of,
    load_test_outputs,
    metric_history,
)

__all__ = ["BINS", "critical_difference", "curves", "of_compare", "per_class_recall",
           "reliability"]


def reliability(pooled: dict[str, tuple[np.ndarray, np.ndarray]], bins: int = BINS) -> Figure:
    """`training.plots.reliability` of each loss's test outputs, all its seeds concatenated."""
    return plots.reliability(
        pooled, bins, title=f"reliability diagrams ({bins} bins), test outputs pooled over seeds")


def critical_difference(mean_ranks: dict[str, float], nemenyi: pd.DataFrame, cd: float,
                        alpha: float, title: str) -> Figure:
    """Critical-difference diagram: `mean_ranks` (loss → mean rank, 1 = best) on the axis,
    a bar joining losses whose Nemenyi p (`nemenyi`, k × k) is ≥ `alpha`, the CD above."""
    figure = new_figure((7.0, 1.2 + 0.3 * len(mean_ranks)))
    axes = figure.subplots()
    sp.critical_difference_diagram(pd.Series(mean_ranks), nemenyi, cd=cd, alpha=alpha,
                                   ax=axes)
    figure.suptitle(title, fontsize=10)
    return figure


def _by_variant(runs: CompareRuns, task: str) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for child in runs.finished(task):
        grouped.setdefault(child.variant, []).append(child)
    return grouped


def of_compare(client: mlflow.MlflowClient, runs: CompareRuns) -> dict[str, Figure]:
    """Artifact path → Figure of one dataset's compare, read from the store: curves per task
    (val MAP@R alone for retrieval), per-class recall and reliability (classification), loss
    landscapes (runs with LANDSCAPE=1)."""
    out: dict[str, Figure] = {}
    title = runs.params.get("dataset", runs.experiment)
    for task in runs.tasks():
        groups = _by_variant(runs, task)
        histories = {
            key: {v: [metric_history(client, c.run_id, key) for c in kids]
                  for v, kids in groups.items()}
            for key in metric_catalog.task(task).curves
        }
        if _has_values(histories):
            out[f"figures/curves_{task}.png"] = curves(histories, f"{title} ({task})")
        map_at_r = {"val/map_at_r": histories.get("val/map_at_r", {})}
        if task == "retrieval" and _has_values(map_at_r):
            out["figures/val_map_at_r.png"] = curves(map_at_r, f"{title}: val MAP@R")
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
        out["figures/per_class_recall.png"] = per_class_recall(recalls, counts)
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
        out["figures/reliability.png"] = reliability(pooled)
    return out
