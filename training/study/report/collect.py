"""Read a compare back from the MLflow store: the parent run and every child run's numbers.

Nothing here trains or needs the compare's process: a compare interrupted halfway, or run on
another machine against the same store, is read the same way. Cost: one `search_runs` for
the children; one download of `eval/per_class_recall.json` (the trainer's per-class recall
table, about 1 KB) per finished classification child, for tail recall and the per-class
figure (runs of older stores logged `test/recall_class_<c>` metrics instead: those are used,
and nothing is downloaded); then, for the other figures only, one `get_metric_history` per
(child, curve) and one `eval/test_outputs.npz` download per classification child.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from pathlib import Path

import mlflow
import numpy as np

from training import metric_catalog
from training.errors import ConfigError
from training.loss_catalog import catalog, loss_spec
from training.tags import COMPARE_TAG, ERROR_TAG, STUDY_TAG, VARIANT_TAG

SUMMARY_TAG = "losslab.summary"  # a loss's mean-over-seeds run that `publish` writes: not a seed
RECALL_TABLE = "eval/per_class_recall.json"  # written by the trainer with mlflow.log_table
_OLD_RECALL = re.compile(r"test/recall_class_(\d+)")  # older stores: one metric per class


class ReportError(ValueError):
    """The store has no such compare; the message names what exists."""


@dataclasses.dataclass(frozen=True)
class ChildRun:
    """One (variant, seed) run of a compare.

    Attributes:
        metrics: latest value of every metric of the run (`test/accuracy`, ...).
        train_counts: int64 (C,) training images per class, from the run's `train` dataset
            input; None when the run logged none (it failed before loading data).
        status: MLflow status: FINISHED, FAILED, KILLED or RUNNING.
        error: the `losslab.error` tag of a failed run.
        recall: float64 (C,) test recall per class (NaN: class absent from the test split);
            None when unknown (not a finished classification run, or nothing logged).
        output: what the loss took from the model (its registry entry's `output`, with the
            run's `head` param for classification): logits, cosine_logits, embedding,
            proxy_cosines; None when the loss cannot be resolved here.
        dataset: the run's `dataset` param ("" when it logged none).
    """

    run_id: str
    variant: str
    task: str
    seed: int
    status: str
    metrics: dict[str, float]
    train_counts: np.ndarray | None
    error: str | None
    recall: np.ndarray | None = None
    output: str | None = None
    dataset: str = ""

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED"


@dataclasses.dataclass(frozen=True)
class CompareRuns:
    """A parent run with its children; `variants` in the order the compare listed them."""

    parent_id: str
    experiment: str
    params: dict[str, str]
    variants: tuple[str, ...]
    children: tuple[ChildRun, ...]

    def finished(self, task: str | None = None) -> list[ChildRun]:
        return [c for c in self.children if c.finished and task in (None, c.task)]

    def tasks(self) -> list[str]:
        """Tasks with at least one finished run, in the catalogue's order."""
        present = {c.task for c in self.finished()}
        return [t for t in metric_catalog.task_names() if t in present]

    def datasets(self) -> list[str]:
        """The datasets of the children: in the order of the parent's `datasets` param where
        it names them (comma-separated), the others after them by name."""
        found = {c.dataset for c in self.children}
        listed = [d for d in self.params.get("datasets", "").split(",") if d in found]
        return list(dict.fromkeys(listed)) + sorted(found - set(listed))

    def only(self, dataset: str) -> CompareRuns:
        """The same compare with only `dataset`'s children. Params: `dataset` set to it, and
        `imbalance` to its own where the parent logged one per dataset ("10,100", in the
        order of its `datasets` param)."""
        params = {**self.params, "dataset": dataset}
        listed = self.params.get("datasets", "").split(",")
        ratios = self.params.get("imbalance", "").split(",")
        if len(ratios) > 1 and len(ratios) == len(listed) and dataset in listed:
            params["imbalance"] = ratios[listed.index(dataset)]
        return dataclasses.replace(
            self, params=params, children=tuple(c for c in self.children if c.dataset == dataset))


def find_parent(client: mlflow.MlflowClient, experiment: str | None, parent: str | None) -> str:
    """Run id of `parent` (checked to be a compare), else the latest compare parent run in
    `experiment`, else (neither given) the latest compare parent run in the whole store."""
    if parent:
        try:
            run = client.get_run(parent)
        except mlflow.exceptions.MlflowException:
            raise ReportError(f"parent={parent!r}: no such run in the store") from None
        if run.data.tags.get(COMPARE_TAG) != "true":
            raise ReportError(f"parent={parent!r} is not a compare parent run "
                              f"(it has no {COMPARE_TAG}=true tag)")
        return parent
    if experiment:
        found = client.get_experiment_by_name(experiment)
        ids = [] if found is None else [found.experiment_id]
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        ids, filter_string=f"tags.`{COMPARE_TAG}` = 'true'",
        order_by=["attributes.start_time DESC"], max_results=1,
    ) if ids else []
    if not runs:
        names = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        where = f"experiment={experiment!r} holds" if experiment else "the store holds"
        raise ReportError(f"{where} no compare run (run make compare first); experiments in "
                          f"the store: {', '.join(names) or '(none)'}")
    return runs[0].info.run_id


def collect(client: mlflow.MlflowClient, parent_id: str) -> CompareRuns:
    """The parent's params and every child run (finished or not), ordered variant, seed."""
    parent = client.get_run(parent_id)
    experiment = client.get_experiment(parent.info.experiment_id).name
    children = []
    specs: dict = {}  # variant → LossSpec or None
    page_token = None
    while True:
        page = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
            run_view_type=mlflow.entities.ViewType.ACTIVE_ONLY,
            page_token=page_token,
        )
        # Study runs of a tuned compare and the report's summary runs are children too, but
        # not seeds of a variant.
        children += [_with_recall(client, _child(run, specs)) for run in page
                     if STUDY_TAG not in run.data.tags and SUMMARY_TAG not in run.data.tags]
        page_token = page.token
        if not page_token:
            break
    # A sweep's variants ("ce[l2=0.0001]") are listed in `variants`; otherwise the losses.
    params = parent.data.params
    listed = [v for v in (params.get("variants") or params.get("losses", "")).split(",") if v]
    seen = {c.variant for c in children}
    variants = tuple(listed + sorted(seen - set(listed), key=_registry_order))
    children.sort(key=lambda c: (variants.index(c.variant), c.seed))
    return CompareRuns(parent_id, experiment, dict(parent.data.params), variants, tuple(children))


def references(runs: CompareRuns, requested: str | None = None) -> dict[str, str]:
    """task → the loss every other loss of that task is compared with.

    Args:
        requested: comma-separated losses of the compare, at most one per task
            (`reference=ce,triplet`); a task it names none for gets its first listed loss
            with a finished run.

    Raises:
        ReportError: a name that is not a loss of this compare, or two for one task.
    """
    chosen: dict[str, str] = {}
    for name in filter(None, (n.strip() for n in (requested or "").split(","))):
        if name not in runs.variants:
            raise ReportError(f"reference={name!r} is not a loss of this compare; its losses: "
                              f"{', '.join(runs.variants) or '(none)'}")
        task = next((c.task for c in runs.children if c.variant == name), None)
        if task is None:
            try:
                task = loss_spec(name).task
            except ConfigError:
                continue  # no run and no entry: it cannot be the reference of anything
        if task in chosen:
            raise ReportError(f"reference={requested!r} names two {task} losses "
                              f"({chosen[task]}, {name}); give at most one per task")
        chosen[task] = name
    for task in runs.tasks():
        if task not in chosen:
            finished = {c.variant for c in runs.finished(task)}
            chosen[task] = next(v for v in runs.variants if v in finished)
    return chosen


def _registry_order(variant: str) -> tuple[int, str]:
    names = [s.name for s in catalog().specs()]
    return (names.index(variant) if variant in names else len(names), variant)


def variant_of(params: dict[str, str]) -> str | None:
    """The compare variant of a run: its `loss` param (a registry name or import path). A run
    of the flat-params era (`loss=triplet`, `mining=hard`) maps to the preset that fixes those
    arguments (`triplet_hard`)."""
    name = params.get("loss")
    if name is None:
        return None
    for preset in catalog().specs():
        if preset.preset_of == name and preset.fixed and all(
            params.get(key, params.get(f"loss.{key}")) == str(value) for key, value in preset.fixed
        ):
            return preset.name
    return name


def output_of(spec, params: dict[str, str]) -> str | None:
    """What a run's loss took from the model, from its registry entry (`spec`; None when the
    loss does not resolve here, e.g. a user's module that does not import on this machine)
    and, for classification, the run's `head` param (dense, cosine; auto = the entry's)."""
    if spec is None:
        return None
    head = params.get("head", "auto")
    if spec.task == "classification" and head in ("dense", "cosine"):
        return "cosine_logits" if head == "cosine" else "logits"
    return spec.output


def _spec_or_none(variant: str, cache: dict):
    """`loss_spec(variant)` or None, looked up once per variant (an import path that fails
    would otherwise be imported again for every seed)."""
    if variant not in cache:
        try:
            cache[variant] = loss_spec(variant)
        except ConfigError:
            cache[variant] = None
    return cache[variant]


def _child(run, specs: dict) -> ChildRun:
    params = run.data.params
    variant = run.data.tags.get(VARIANT_TAG) or variant_of(params) or params.get("loss", "unknown")
    return ChildRun(
        run_id=run.info.run_id,
        variant=variant,
        # "task": the tag's name before our tags moved under losslab. (old stores)
        task=run.data.tags.get("losslab.task") or run.data.tags.get("task", "unknown"),
        seed=int(params.get("seed", -1)),
        status=run.info.status,
        metrics=dict(run.data.metrics),
        train_counts=_train_counts(run),
        error=run.data.tags.get(ERROR_TAG),
        recall=recall_from_metrics(run.data.metrics),
        output=output_of(_spec_or_none(variant, specs), params),
        dataset=params.get("dataset", ""),
    )


def recall_from_metrics(metrics: dict[str, float]) -> np.ndarray | None:
    """(C,) recall from `test/recall_class_<c>` metrics (older stores), NaN where a class was
    not logged; None when the run has none."""
    found = {int(m.group(1)): v for k, v in metrics.items() if (m := _OLD_RECALL.fullmatch(k))}
    if not found:
        return None
    recall = np.full(max(found) + 1, np.nan)
    recall[list(found)] = list(found.values())
    return recall


def _with_recall(client: mlflow.MlflowClient, child: ChildRun) -> ChildRun:
    """A finished classification child with its per-class recall table read (when its
    metrics did not carry the recall already); training counts from the table when the run
    logged no dataset input."""
    if child.recall is not None or not child.finished or child.task != "classification":
        return child
    try:
        columns = load_recall_table(client, child.run_id)
    except ReportError as exc:
        print(f"warning: tail recall of {child.variant} seed {child.seed} leaves it out: {exc}")
        return child
    recall = np.array([np.nan if r is None else r for r in columns["recall"]], np.float64)
    counts = child.train_counts
    if counts is None and "train_images" in columns:
        counts = np.asarray(columns["train_images"], dtype=np.int64)
    return dataclasses.replace(child, recall=recall, train_counts=counts)


def load_recall_table(client: mlflow.MlflowClient, run_id: str) -> dict[str, list]:
    """Column → values of the run's `eval/per_class_recall.json`, one row per class in
    class-index order (`mlflow.log_table` writes {"columns": [...], "data": [[...], ...]},
    NaN as null). ReportError when it is missing or has no `recall` column."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, RECALL_TABLE, folder)
            table = json.loads(Path(path).read_text())
            columns = {name: [row[i] for row in table["data"]]
                       for i, name in enumerate(table["columns"])}
        except (mlflow.exceptions.MlflowException, OSError, ValueError, KeyError,
                IndexError, TypeError) as exc:
            raise ReportError(f"run {run_id} has no readable {RECALL_TABLE} "
                              f"({type(exc).__name__}: {exc})") from None
    if "recall" not in columns:
        raise ReportError(f"run {run_id}: {RECALL_TABLE} has no recall column")
    return columns


def _train_counts(run) -> np.ndarray | None:
    """Class counts of the run's `train` dataset input (logged by `tracking.log_dataset`)."""
    for item in run.inputs.dataset_inputs if run.inputs else []:
        tags = {t.key: t.value for t in item.tags}
        if tags.get("mlflow.data.context") == "train" and "class_counts" in tags:
            counts = {int(c): int(n) for c, n in json.loads(tags["class_counts"]).items()}
            dense = np.zeros(max(counts) + 1, dtype=np.int64)
            dense[list(counts)] = list(counts.values())
            return dense
    return None


# --- what only the figures need ------------------------------------------------------------


def metric_history(client: mlflow.MlflowClient, run_id: str, key: str) -> np.ndarray:
    """float64 (epochs,) values of `key` ordered by step (empty when never logged)."""
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    by_step = {m.step: m.value for m in points}  # a step logged twice (resume): the last wins
    return np.array([by_step[s] for s in sorted(by_step)], dtype=np.float64)


def load_test_outputs(client: mlflow.MlflowClient, run_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(probs (N, C), labels (N,)) of `eval/test_outputs.npz`; ReportError when missing."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, "eval/test_outputs.npz", folder)
        except (mlflow.exceptions.MlflowException, OSError) as exc:
            raise ReportError(f"run {run_id} has no eval/test_outputs.npz ({exc})") from None
        with np.load(path) as data:
            return data["probs"], data["labels"]


def landscape_of(client: mlflow.MlflowClient, run_id: str):
    """The run's `landscape/grid.npz` as a `Landscape`, or None when it has none."""
    if not any(a.path == "landscape/grid.npz" for a in client.list_artifacts(run_id, "landscape")):
        return None
    from training.landscape import Landscape  # noqa: PLC0415 (only when landscapes exist)

    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(run_id, "landscape/grid.npz", folder)
        return Landscape.load_npz(str(Path(path)))
