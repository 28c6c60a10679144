"""One code path from the store to a report: `build_report` reads, `publish` logs to the parent.

`training.compare` calls both after its trainings; `python -m training.report` calls them on
any parent run in the store. Logging uses the client with the parent's run id, so a finished
(or failed) parent gets its report without being reopened.

What `publish` puts on the parent: artifacts `report.md`, `report.csv`, `figures/*.png`; the
markdown as the run's description (tag `mlflow.note.content`). Over several datasets also
`report_across.csv`, `figures/cd_<task>_<metric>.png` and each dataset's figures under
`figures/<dataset>/`. Because the MLflow UI cannot average over seeds, it also writes one
summary run per loss under the parent ("ce · mean of 3 seeds", tag `losslab.summary=true`;
over several datasets one per loss and dataset, "ce · digits · mean of 3 seeds", tag
`losslab.dataset`) with a training run's metric keys (`test/accuracy` = the mean over seeds),
`<key>_std` and `n`: the UI's runs table and charts then put the losses side by side. A
rebuilt report reuses a loss's summary run and logs again (the latest value is shown).
`collect` never reads summary runs; stores older than them (whose parent carries
`<loss>/<metric>/mean` metrics) report the same way.
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

from training import metric_catalog
from training.study.report import figures, render, render_across
from training.study.report.across import Across, across_datasets
from training.study.report.collect import (
    SUMMARY_TAG,
    CompareRuns,
    collect,
    metric_history,
    references,
)
from training.study.report.summary import ALPHA, Stat, TaskSummary, column, summarize
from training.tags import VARIANT_TAG

DESCRIPTION_TAG = "mlflow.note.content"  # the run description the MLflow UI shows
DATASET_TAG = "losslab.dataset"  # a summary run's dataset, in a compare over several
MAX_TAG_CHARS = 8000  # MLflow refuses longer tag values (MAX_TAG_VAL_LENGTH)
BATCH = 1000  # metrics per log_batch call (MLflow's limit)


@dataclasses.dataclass
class Report:
    """Everything `publish` logs. `by_dataset`: dataset → task → TaskSummary (stats,
    reference, paired comparisons); `summaries`: the same task → TaskSummary of a one-dataset
    compare ({} when it holds several); `across`: task → one `Across` per headline metric
    (several datasets only); `figures`: artifact path → Figure; `texts`: artifact path → more
    text artifacts (`report_across.csv`)."""

    parent_id: str
    markdown: str
    csv: str
    summaries: dict[str, TaskSummary]
    figures: dict[str, Figure]
    warnings: tuple[str, ...] = ()  # the compare measured nothing (`measured_nothing`)
    by_dataset: dict[str, dict[str, TaskSummary]] = dataclasses.field(default_factory=dict)
    across: dict[str, list[Across]] = dataclasses.field(default_factory=dict)
    texts: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.by_dataset and self.summaries:  # a Report made from one dataset's tables
            self.by_dataset = {"": self.summaries}

    @property
    def table(self) -> dict[str, dict[str, dict[str, Stat]]]:
        """task → loss → metric key (`test/accuracy`) → Stat (one-dataset compares)."""
        return {task: s.stats for task, s in self.summaries.items()}


def build_report(client: mlflow.MlflowClient, parent_id: str,
                 reference: str | None = None) -> Report:
    """Read the parent's children back and build the tables and figures; a compare over
    several datasets (children with different `dataset` params) gets each dataset's tables
    and the statistics across datasets (`across`).

    Args:
        reference: comma-separated reference losses, at most one per task; None: the
            compare's own `reference` param if it logged one, else each task's first listed
            loss (`collect.references`).
    """
    runs = collect(client, parent_id)
    if reference is None and runs.params.get("reference", "none") != "none":
        reference = runs.params["reference"]
    chosen = references(runs, reference)
    datasets = runs.datasets()
    by_dataset = {d: summarize(runs.only(d), chosen) for d in datasets}
    selection = metric_catalog.selection_metrics()
    histories = {task: {c.run_id: metric_history(client, c.run_id, selection[task])
                        for c in runs.finished(task)} for task in runs.tasks()}
    if len(datasets) <= 1:
        summaries = by_dataset[datasets[0]] if datasets else {}
        warnings = tuple(w for task in runs.tasks()
                         for w in measured_nothing(runs, task, histories[task]))
        return Report(parent_id=parent_id, markdown=render.markdown(runs, summaries, warnings),
                      csv=render.csv_text(summaries), summaries=summaries,
                      figures=figures.of_compare(client, runs), warnings=warnings, by_dataset=by_dataset)
    warnings = tuple(f"{d}: {w}" for d in datasets for task in runs.only(d).tasks()
                     for w in measured_nothing(runs.only(d), task, histories[task]))
    across = {}
    for task in runs.tasks():
        per_dataset = {d: s[task] for d, s in by_dataset.items() if task in s}
        found = [across_datasets(per_dataset, column(m), chosen[task])
                 for m in metric_catalog.headline(task)]
        across[task] = [a for a in found if a is not None]
    figures_ = {}
    for d in datasets:
        folder = re.sub(r"[^A-Za-z0-9_.-]+", "-", d).strip("-") or "dataset"
        figures_.update({path.replace("figures/", f"figures/{folder}/", 1): figure
                         for path, figure in figures.of_compare(client, runs.only(d)).items()})
    for result in (r for per_task in across.values() for r in per_task):
        if result.nemenyi is not None:
            figures_[render_across.figure_path(result)] = figures.critical_difference(
                result.mean_ranks, result.nemenyi, result.critical_difference, ALPHA,
                f"{result.task}, test {result.metric.label}: mean rank over "
                f"{len(result.datasets)} datasets (1 = best)")
    return Report(
        parent_id=parent_id,
        markdown=render_across.markdown(runs, by_dataset, across, warnings),
        csv=render_across.csv_text(by_dataset), summaries={}, figures=figures_,
        warnings=warnings, by_dataset=by_dataset, across=across,
        texts={"report_across.csv": render_across.across_csv(across)},
    )


CHANCE_MARGIN = 0.02  # "at chance": the selection metric within 2 points of 1/C


def measured_nothing(runs: CompareRuns, task: str,
                     histories: dict[str, np.ndarray]) -> list[str]:
    """Sentences for runs that learned nothing, so the table compares noise: a run whose last
    selection metric is within `CHANCE_MARGIN` of 1/C (classification: C from its training
    split), or a run of 2+ epochs whose selection metric never improved on its epoch-1 value
    (rose, or fell where lower is better).
    "This compare measured nothing" when every run of the task is so.

    Args:
        histories: run id → its selection metric per epoch (`metric_history`).
    """
    children = runs.finished(task)
    metric = metric_catalog.selection_metric(task)
    # Minimised metrics are negated so "improved" is "rose" for both directions.
    sign = 1.0 if metric_catalog.metric(metric).higher_is_better else -1.0
    cause = (f"likely cause: too few epochs ({runs.params.get('epochs', '?')}) for the model "
             "to learn; try `make compare EPOCHS=30`, or check the learning rate and the data")
    chance = [c for c in children if task == "classification" and c.train_counts is not None
              and len(histories.get(c.run_id, ())) and
              abs(histories[c.run_id][-1] - 1 / c.train_counts.size) <= CHANCE_MARGIN]
    flat = [c for c in children if len(h := sign * np.asarray(histories.get(c.run_id, ()))) >= 2
            and np.nanmax(h[1:]) <= h[0]]
    out = []
    for found, what in (
        (chance, "ended at chance on {metric} (within {margin:g} of 1/{classes} = {p:.4f})"),
        (flat, "did not improve {metric} after epoch 1"),
    ):
        if not found:
            continue
        classes = found[0].train_counts.size if found[0].train_counts is not None else 0
        text = what.format(metric=metric, margin=CHANCE_MARGIN, classes=classes,
                           p=1 / classes if classes else math.nan)
        if len(found) == len(children):
            out.append(f"{task}: every run {text}: this compare measured nothing; {cause}.")
        else:
            listed = ", ".join(f"{c.variant} seed {c.seed}" for c in found)
            out.append(f"{task}: {len(found)} of {len(children)} runs {text} ({listed}): "
                       f"their losses' numbers are partly noise; {cause}.")
    return out


def publish(client: mlflow.MlflowClient, report: Report) -> None:
    """Log the report to the parent (artifacts replace older ones; see the module docstring)."""
    client.log_text(report.parent_id, report.markdown, "report.md")
    client.log_text(report.parent_id, report.csv, "report.csv")
    for path, figure in report.figures.items():
        client.log_figure(report.parent_id, figure, path)
    for path, text in report.texts.items():
        client.log_text(report.parent_id, text, path)
    parent = client.get_run(report.parent_id)
    existing = {(run.data.tags.get(VARIANT_TAG), run.data.tags.get(DATASET_TAG)): run.info.run_id
                for run in client.search_runs(
                    [parent.info.experiment_id],
                    f"tags.mlflow.parentRunId = '{report.parent_id}' and "
                    f"tags.`{SUMMARY_TAG}` = 'true'")}
    several = len(report.by_dataset) > 1
    now = int(time.time() * 1000)
    for dataset, summaries in report.by_dataset.items():
        for task, summary in summaries.items():
            for loss, stats in summary.stats.items():
                metrics = summary_metrics(stats)
                on = f" · {dataset}" if several else ""
                name = f"{loss}{on} · mean of {_seeds(int(metrics['n']))}"
                run_id = existing.get((loss, dataset if several else None))
                if run_id is None:
                    tags = {"mlflow.parentRunId": report.parent_id, SUMMARY_TAG: "true",
                            VARIANT_TAG: loss, "losslab.task": task}
                    run_id = client.create_run(
                        parent.info.experiment_id, run_name=name,
                        tags=tags | ({DATASET_TAG: dataset} if several else {})).info.run_id
                else:
                    client.update_run(run_id, name=name)
                entities = [MlflowMetric(key, value, now, 0) for key, value in metrics.items()]
                for start in range(0, len(entities), BATCH):
                    client.log_batch(run_id, metrics=entities[start:start + BATCH])
                client.set_terminated(run_id, "FINISHED")
    client.set_tag(report.parent_id, DESCRIPTION_TAG, description(report.markdown))


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def summary_metrics(stats: dict[str, Stat]) -> dict[str, float]:
    """A summary run's metrics: per metric key with a value, the mean over seeds under the
    training run's own key (`test/accuracy`), the sample std as `<key>_std` (2+ seeds), and
    `n`: the most seeds any metric had."""
    out: dict[str, float] = {}
    for key, stat in stats.items():
        if stat.n:
            out[key] = stat.mean
        if not math.isnan(stat.std):
            out[f"{key}_std"] = stat.std
    out["n"] = float(max((s.n for s in stats.values()), default=0))
    return out


def description(markdown: str) -> str:
    """The report as a run description, cut to MLflow's tag limit when longer."""
    if len(markdown) <= MAX_TAG_CHARS:
        return markdown
    tail = "\n\n… (cut here: the whole report is the run's report.md artifact)\n"
    return markdown[: MAX_TAG_CHARS - len(tail)] + tail
