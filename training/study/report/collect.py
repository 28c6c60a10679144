"""Read a compare back from the MLflow store: the parent run and every child run's numbers.

Nothing here trains or needs the compare's process: a compare interrupted halfway, or run on
another machine against the same store, is read the same way. Cost: one `search_runs` for
the children, then, for the figures only, one `get_metric_history` per (child, curve) and
one artifact download per classification child.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np

from training.loss_catalog import catalog
from training.tags import COMPARE_TAG, ERROR_TAG


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
    """

    run_id: str
    variant: str
    task: str
    seed: int
    status: str
    metrics: dict[str, float]
    train_counts: np.ndarray | None
    error: str | None

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
        """Tasks with at least one finished run, classification first."""
        present = {c.task for c in self.finished()}
        return [t for t in ("classification", "retrieval") if t in present]


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
    page_token = None
    while True:
        page = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
            run_view_type=mlflow.entities.ViewType.ACTIVE_ONLY,
            page_token=page_token,
        )
        children += [_child(run) for run in page]
        page_token = page.token
        if not page_token:
            break
    listed = [v for v in parent.data.params.get("losses", "").split(",") if v]
    seen = {c.variant for c in children}
    variants = tuple(listed + sorted(seen - set(listed), key=_registry_order))
    children.sort(key=lambda c: (variants.index(c.variant), c.seed))
    return CompareRuns(parent_id, experiment, dict(parent.data.params), variants, tuple(children))


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


def _child(run) -> ChildRun:
    params = run.data.params
    return ChildRun(
        run_id=run.info.run_id,
        variant=variant_of(params) or params.get("loss", "unknown"),
        # "task": the tag's name before our tags moved under losslab. (old stores)
        task=run.data.tags.get("losslab.task") or run.data.tags.get("task", "unknown"),
        seed=int(params.get("seed", -1)),
        status=run.info.status,
        metrics=dict(run.data.metrics),
        train_counts=_train_counts(run),
        error=run.data.tags.get(ERROR_TAG),
    )


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
