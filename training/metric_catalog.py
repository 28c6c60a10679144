"""Tasks and metrics, one entry each: the catalogue the trainer, tuner, compare and report read.

Standard library only (like `losses/catalog.py`): config validation, `--help` and the report
read it without importing Keras or TensorFlow.

- A `MetricSpec` is one number a run logs (or the report computes): its key, its report label,
  which way is better, whether a run may be selected or tuned on it, its tasks. The key is
  logged once per split, `<split>/<key>` (`val/balanced_accuracy`, `test/balanced_accuracy`);
  a metric with `splits=()` is logged under its key alone (`time/wall_seconds`).
- A `TaskSpec` is one task: its selection metric (early stopping, checkpoint and the tuner's
  default objective, read on val), its headline metrics (the report's winner line and the
  ranks across datasets, read on test), the compare's per-task settings, and the per-epoch
  curves the report draws.

Adding a metric: its computing function (`training/metrics/`) and one `_metric(...)` below.
`tests/test_one_registry.py` fails on a metric name list or a direction declared elsewhere.
"""

from __future__ import annotations

import dataclasses
import types
import typing

from training.errors import ConfigError

HIGHER, LOWER, UNRANKED = "higher", "lower", "none"  # MetricSpec.better
SPLITS = ("val", "test")  # a metric's usual splits (train/ is only the optimised loss)
STAGE2 = "stage2/"  # stage 2 logs every classification score again under val|test/stage2/


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """One metric.

    Attributes:
        key: the name without split (`balanced_accuracy`), or the full name when `splits` is
            empty (`time/wall_seconds`).
        label: the report's column header.
        better: "higher", "lower", or "none": not rankable (a coverage is good near its
            nominal level, a chosen τ is a setting); never an objective, never bold or ▲/▼.
        tasks: the tasks whose runs have it.
        objective: a run may be selected or tuned on `val/<key>`.
        optional: only some runs log it (a report column only when a run did).
        column: a column of the compare report's table.
        splits: where it is logged (`<split>/<key>`); () = under `key` itself.
        fix: for a classifier-level fix any CE model gets free (post-hoc logit adjustment,
            τ-norm), the fix's name: the report asks whether a loss beats CE plus it.
    """

    key: str
    label: str
    better: str
    tasks: tuple[str, ...]
    objective: bool = False
    optional: bool = False
    column: bool = True
    splits: tuple[str, ...] = SPLITS
    fix: str = ""

    def __post_init__(self):
        if self.better not in (HIGHER, LOWER, UNRANKED):
            raise ValueError(f"{self.key}: better={self.better!r}; valid: higher, lower, none")
        if self.objective and self.better == UNRANKED:
            raise ValueError(f"{self.key}: an unranked metric cannot be an objective")

    @property
    def ranked(self) -> bool:
        return self.better != UNRANKED

    @property
    def higher_is_better(self) -> bool:
        """True for "higher"; False for "lower" and for unranked metrics (never compared)."""
        return self.better == HIGHER

    @property
    def direction(self) -> str:
        """Optuna's word: "maximize" or "minimize" (ConfigError for an unranked metric)."""
        if not self.ranked:
            raise ConfigError(f"{self.key} has no better direction (not rankable)")
        return "maximize" if self.better == HIGHER else "minimize"

    def name(self, split: str = "test") -> str:
        """The logged name on `split` (`test/balanced_accuracy`); the key when split-free."""
        return f"{split}/{self.key}" if self.splits else self.key

    def names(self) -> tuple[str, ...]:
        return tuple(self.name(s) for s in self.splits) if self.splits else (self.key,)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task.

    Attributes:
        selection: the metric key a run is selected on, read on val (`balanced_accuracy`).
        headline: metric keys the report leads with and ranks losses on across datasets.
        defaults: the compare's settings shared by every variant of the task (a user's
            Config key overrides them); read them with `task_defaults`.
        curves: logged names drawn per epoch in the compare report.
        brief: test metric keys a run's description names.
    """

    name: str
    selection: str
    headline: tuple[str, ...]
    defaults: typing.Mapping[str, typing.Any]
    curves: tuple[str, ...]
    brief: tuple[str, ...]

    @property
    def selection_metric(self) -> str:
        return f"val/{self.selection}"


_TASKS: dict[str, TaskSpec] = {}
_METRICS: dict[str, MetricSpec] = {}
CLS, RET, REG = "classification", "retrieval", "regression"
ALL = (CLS, RET, REG)


def _task(name, selection, headline, defaults, curves, brief) -> None:
    _TASKS[name] = TaskSpec(name, selection, headline, types.MappingProxyType(defaults),
                            curves, brief)


def _metric(key, label, better, tasks, **kw) -> None:
    _METRICS[key] = MetricSpec(key, label, better, tasks if isinstance(tasks, tuple) else
                               (tasks,), **kw)


# --- tasks -----------------------------------------------------------------------------------
# Retrieval's batch: P = 4 classes × K = 16 images = 64, the classification batch size; P = 4
# fits the 5 training classes of any 10-class dataset (config's K = 4 would need P = 16).
_task(CLS, "balanced_accuracy", ("balanced_accuracy",), {"batch_size": 64},
      ("val/loss", "val/accuracy", "val/balanced_accuracy", "val/macro_f1", "val/ece"),
      ("accuracy", "balanced_accuracy", "balanced_accuracy_posthoc", "macro_f1"))
_task(RET, "map_at_r", ("map_at_r",), {"batch_size": 64, "samples_per_class": 16},
      ("train/loss", "val/precision_at_1", "val/recall_at_5", "val/r_precision", "val/map_at_r"),
      ("precision_at_1", "map_at_r"))
_task(REG, "rmse", ("rmse",), {"batch_size": 64},
      ("train/loss", "val/loss", "val/rmse", "val/mae", "val/r2"),
      ("rmse", "mae", "r2"))

# --- metrics, in the report's column order ---------------------------------------------------
_metric("accuracy", "accuracy", HIGHER, CLS, objective=True)
_metric("balanced_accuracy", "balanced acc.", HIGHER, CLS, objective=True)
# Post-hoc logit adjustment (Menon et al. 2021) and τ-norm (Kang et al. 2020): training.metrics.
_metric("balanced_accuracy_posthoc", "balanced acc. post-hoc", HIGHER, CLS, objective=True,
        optional=True, fix="post-hoc logit adjustment")
# τ-norm is logged on val every epoch (τ chosen on val itself), so it can be tuned on.
_metric("balanced_accuracy_tau_norm", "balanced acc. τ-norm", HIGHER, CLS, objective=True,
        optional=True, fix="τ-norm")
_metric("stage2/balanced_accuracy", "balanced acc. stage 2", HIGHER, CLS, optional=True)
_metric("macro_f1", "macro-F1", HIGHER, CLS, objective=True)
_metric("ece", "ECE", LOWER, CLS, objective=True)
# Computed by the report from each run's per-class recall table, never logged by a run.
_metric("tail_recall", "tail recall", HIGHER, CLS, splits=("test",))
for _group in ("many", "medium", "few"):  # Liu et al. 2019 shot groups (training.metrics)
    _metric(f"{_group}_shot_accuracy", f"{_group}-shot acc.", HIGHER, CLS, objective=True,
            optional=True)
_metric("loss", "loss", LOWER, (CLS, REG), objective=True, column=False,
        splits=("train", *SPLITS))
_metric("tau_norm_tau", "τ of τ-norm", UNRANKED, CLS, optional=True, column=False)

_metric("precision_at_1", "P@1", HIGHER, RET, objective=True)
_metric("recall_at_5", "R@5", HIGHER, RET, objective=True)
_metric("r_precision", "R-precision", HIGHER, RET, objective=True)
_metric("map_at_r", "MAP@R", HIGHER, RET, objective=True)

_metric("rmse", "RMSE", LOWER, REG, objective=True)
_metric("mae", "MAE", LOWER, REG, objective=True)
_metric("median_ae", "median AE", LOWER, REG, objective=True)
_metric("r2", "R²", HIGHER, REG, objective=True)
# Losses that predict a distribution or quantiles (training/metrics/regression_intervals.py):
# Gaussian NLL, σ and the 90 % interval's coverage; pinball loss per quantile (`pinball_q10`,
# one entry for the family) and its mean; the outer quantiles' interval. A coverage is good
# near its nominal level, not high or low, and a width alone rewards empty intervals: unranked.
_metric("nll", "NLL", LOWER, REG, objective=True, optional=True)
_metric("coverage_90", "90 % coverage", UNRANKED, REG, optional=True)
_metric("sigma_mean", "mean σ", UNRANKED, REG, optional=True, column=False)
_metric("pinball_mean", "pinball loss", LOWER, REG, objective=True, optional=True)
_metric("pinball_q*", "pinball loss at one quantile", LOWER, REG, optional=True, column=False)
_metric("interval_coverage", "interval coverage", UNRANKED, REG, optional=True)
_metric("interval_nominal", "interval nominal coverage", UNRANKED, REG, optional=True,
        column=False)
_metric("interval_width", "interval width", UNRANKED, REG, optional=True)
_metric("crossing_rate", "quantile crossing rate", LOWER, REG, optional=True)

# Runs with LANDSCAPE=1 (training/landscape): mean loss rise on a ring around the minimum;
# lower = flatter. Measured on training data.
_metric("landscape/sharpness", "landscape sharpness", LOWER, ALL, optional=True, splits=())
_metric("time/wall_seconds", "wall s/run", LOWER, ALL, splits=())


# --- reading the catalogue -------------------------------------------------------------------


def task_names() -> tuple[str, ...]:
    """Every task, in the report's order."""
    return tuple(_TASKS)


def task(name: str) -> TaskSpec:
    """The task's entry; ConfigError naming the valid tasks."""
    if name not in _TASKS:
        raise ConfigError(f"task={name!r} is not a task; valid: {', '.join(_TASKS)}")
    return _TASKS[name]


def task_defaults(name: str) -> dict[str, typing.Any]:
    """A fresh dict of the compare's settings for every variant of the task."""
    return dict(task(name).defaults)


def selection_metric(name: str) -> str:
    """The task's val metric (`val/balanced_accuracy`)."""
    return task(name).selection_metric


def selection_metrics() -> dict[str, str]:
    """task → its selection metric, every task."""
    return {t: selection_metric(t) for t in _TASKS}


def metrics(task_name: str | None = None) -> tuple[MetricSpec, ...]:
    """Every metric (of `task_name`), in catalogue order."""
    if task_name is not None:
        task(task_name)
    return tuple(m for m in _METRICS.values() if task_name in (None, *m.tasks))


def columns(task_name: str) -> tuple[MetricSpec, ...]:
    """The report table's columns of the task, in order."""
    return tuple(m for m in metrics(task_name) if m.column)


def objectives(task_name: str) -> tuple[str, ...]:
    """Metric keys a run of the task may be selected or tuned on (`val/<key>`), the selection
    metric first."""
    keys = [m.key for m in metrics(task_name) if m.objective]
    first = task(task_name).selection
    return (first, *(k for k in keys if k != first))


def headline(task_name: str) -> tuple[MetricSpec, ...]:
    return tuple(metric(k) for k in task(task_name).headline)


def free_fixes() -> tuple[MetricSpec, ...]:
    """Classifier-level fixes any CE model gets free, as metrics (`MetricSpec.fix`)."""
    return tuple(m for m in _METRICS.values() if m.fix)


def find(name: str) -> MetricSpec | None:
    """The entry of a logged name (`val/balanced_accuracy`; `test/stage2/accuracy`: stage 2's
    copy of a score; `val/pinball_q10`: a family's member; `time/wall_seconds`) or of a key
    (`balanced_accuracy`); None if none."""
    found = _key(name)
    if found is not None:
        return found
    split, _, rest = name.partition("/")
    if split in ("train", *SPLITS) and rest:
        stage2 = rest.startswith(STAGE2)
        found = _key(rest) or (_key(rest[len(STAGE2):]) if stage2 else None)
        if found is not None and (split in found.splits or stage2):
            return found
    return None


def _key(key: str) -> MetricSpec | None:
    """The entry of a split-free key; a family entry (`pinball_q*`) takes any suffix."""
    if key in _METRICS:
        return _METRICS[key]
    return next((m for k, m in _METRICS.items() if k.endswith("*") and key.startswith(k[:-1])
                 and len(key) > len(k) - 1), None)


def metric(name: str) -> MetricSpec:
    """`find(name)`, or ConfigError naming the known metrics."""
    found = find(name)
    if found is None:
        raise ConfigError(f"{name!r} is not a known metric; known: {', '.join(_METRICS)}")
    return found


def direction(name: str) -> str:
    """"maximize" or "minimize" for a key or logged name (ConfigError: unknown, unranked)."""
    return metric(name).direction
