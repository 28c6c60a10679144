"""Numbers of the report: per loss, mean ± std over seeds of each test metric, and winners.

Statistics over the finished seeds only: mean, sample standard deviation (ddof = 1, NaN for
a single seed) and n. A loss "clearly wins" a metric under `clear_winner`'s rule.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

TAIL_SHARE = 0.3  # tail recall: the rarest 30 % of classes by training count


@dataclasses.dataclass(frozen=True)
class Metric:
    """One column of the report. `key` is the logged metric; None = computed (tail recall)."""

    name: str
    label: str
    key: str | None
    higher_is_better: bool = True


WALL = Metric("wall_seconds", "wall s/run", "time/wall_seconds", higher_is_better=False)
METRICS: dict[str, tuple[Metric, ...]] = {
    "classification": (
        Metric("accuracy", "accuracy", "test/accuracy"),
        Metric("balanced_accuracy", "balanced acc.", "test/balanced_accuracy"),
        Metric("macro_f1", "macro-F1", "test/macro_f1"),
        Metric("ece", "ECE", "test/ece", higher_is_better=False),
        Metric("tail_recall", "tail recall", None),
        WALL,
    ),
    "retrieval": (
        Metric("precision_at_1", "P@1", "test/precision_at_1"),
        Metric("recall_at_5", "R@5", "test/recall_at_5"),
        Metric("r_precision", "R-precision", "test/r_precision"),
        Metric("map_at_r", "MAP@R", "test/map_at_r"),
        WALL,
    ),
}


@dataclasses.dataclass(frozen=True)
class Stat:
    """Mean, sample std (ddof=1; NaN when n < 2) and count of one metric over seeds."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values) -> Stat:
        v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
        if v.size == 0:
            return cls(math.nan, math.nan, 0)
        return cls(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan, int(v.size))


def tail_classes(train_counts, share: float = TAIL_SHARE) -> np.ndarray:
    """The rarest ⌊share·C⌋ classes (at least 1) by training count, rarest first.

    Ties (e.g. a balanced split) go to the higher class index, the tail end of the long-tail
    profile, which puts class 0 at the head.
    """
    counts = np.asarray(train_counts)
    k = max(1, math.floor(share * counts.size + 1e-9))  # +1e-9: 0.3 * 10 must give 3
    order = np.lexsort((-np.arange(counts.size), counts))  # count ascending, then index desc.
    return order[:k]


def recall_per_class(metrics: dict[str, float], classes: int) -> np.ndarray:
    """float64 (C,) `test/recall_class_<c>` values, NaN where a class was not logged."""
    return np.array([metrics.get(f"test/recall_class_{c}", math.nan) for c in range(classes)])


def tail_recall(metrics: dict[str, float], train_counts) -> float:
    """Mean test recall over `tail_classes(train_counts)` (classes without recall skipped)."""
    if train_counts is None:
        return math.nan
    recall = recall_per_class(metrics, len(train_counts))[tail_classes(train_counts)]
    return float(np.mean(recall[np.isfinite(recall)])) if np.isfinite(recall).any() else math.nan


def value(child, metric: Metric) -> float:
    """One run's value of `metric` (NaN when it was not logged)."""
    if metric.key is None:
        return tail_recall(child.metrics, child.train_counts)
    return float(child.metrics.get(metric.key, math.nan))


def summarize(runs) -> dict[str, dict[str, dict[str, Stat]]]:
    """task → variant → metric name → Stat, over the finished children of a `CompareRuns`."""
    table: dict[str, dict[str, dict[str, Stat]]] = {}
    for task in runs.tasks():
        children = runs.finished(task)
        table[task] = {}
        for variant in runs.variants:
            mine = [c for c in children if c.variant == variant]
            if mine:
                table[task][variant] = {
                    m.name: Stat.of([value(c, m) for c in mine]) for m in METRICS[task]
                }
    return table


def clear_winner(stats: dict[str, Stat], higher_is_better: bool = True) -> str | None:
    """The loss that beats every other beyond the spread over seeds, else None.

    Rule: take the loss with the best mean; it wins only if its interval mean ± std lies
    strictly above (below, when lower is better) the interval of *every* other loss. Needs
    at least two losses with data and n >= 2 seeds for each (no spread, no claim). Losses
    with n = 0 are left out.

    Args:
        stats: loss name → Stat of one metric.
        higher_is_better: False for ECE and wall time.
    """
    present = {k: s for k, s in stats.items() if s.n > 0}
    if len(present) < 2 or any(s.n < 2 for s in present.values()):
        return None
    sign = 1.0 if higher_is_better else -1.0
    best = max(present, key=lambda k: sign * present[k].mean)
    worst_of_best = sign * present[best].mean - present[best].std
    for name, s in present.items():
        if name != best and sign * s.mean + s.std >= worst_of_best:
            return None
    return best


def winners(table: dict[str, dict[str, dict[str, Stat]]]) -> dict[str, dict[str, str | None]]:
    """task → metric name → the clear winner or None."""
    return {
        task: {
            m.name: clear_winner({v: row[m.name] for v, row in rows.items()}, m.higher_is_better)
            for m in METRICS[task]
        }
        for task, rows in table.items()
    }
