"""Losses compared across datasets (Demšar 2006, "Statistical comparisons of classifiers over
multiple data sets", JMLR 7): one number per (dataset, loss), ranks within each dataset.

- The number: a loss's mean over its seeds on that dataset (the per-dataset table's mean), so
  each dataset counts once whatever its number of seeds. Losses without a value on every
  dataset are left out (the tests need complete blocks) and named.
- Ranks: within a dataset, 1 = best (the metric's direction from `metric_catalog`), ties get
  their mean rank (`scipy.stats.rankdata`). The mean rank of a loss is over datasets.
- Friedman test over the k losses (`scipy.stats.friedmanchisquare`, its χ² approximation;
  needs k ≥ 3). Post hoc: Nemenyi for all pairs (`scikit_posthocs.posthoc_nemenyi_friedman`),
  and each loss against the reference with a two-sided Wilcoxon signed-rank test on the
  per-dataset values (`scipy.stats.wilcoxon`), Holm-corrected across the losses.
- Critical difference of the Nemenyi test, CD = q_α √(k(k+1)/(6n)) with q_α the studentized
  range quantile over √2 (`scipy.stats.studentized_range`): two mean ranks further apart
  differ at α.
- Power: `floor` runs each test on the most extreme table n datasets can give (every dataset
  ranking the losses alike), so the report can say when no difference can be significant.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from scipy import stats

from training.study.report.summary import ALPHA, Metric, TaskSummary, holm


@dataclasses.dataclass(frozen=True)
class Floor:
    """The smallest p each test can give with n datasets and k losses (NaN: not run)."""

    friedman: float
    nemenyi: float
    wilcoxon: float  # one comparison, before Holm

    def can_be_significant(self, k: int) -> bool:
        """True when some test could reach ALPHA: Friedman, Nemenyi, or Holm's first step
        (the smallest Wilcoxon p times the k − 1 comparisons)."""
        return (self.friedman < ALPHA or self.nemenyi < ALPHA
                or self.wilcoxon * max(k - 1, 1) < ALPHA)


@dataclasses.dataclass(frozen=True)
class Across:
    """One task and metric across datasets.

    Attributes:
        values: float64 (n datasets, k losses), each loss's mean over seeds.
        ranks: float64 (n, k), 1 = best within the dataset.
        nemenyi: (k, k) p-values indexed by loss; None when k < 3.
        wilcoxon: loss → (p, p_holm) against the reference (absent: the reference itself, or
            the reference left out).
    """

    task: str
    metric: Metric
    reference: str
    datasets: tuple[str, ...]
    losses: tuple[str, ...]
    left_out: tuple[str, ...]
    values: np.ndarray
    ranks: np.ndarray
    friedman_statistic: float
    friedman_p: float
    nemenyi: pd.DataFrame | None
    critical_difference: float
    wilcoxon: dict[str, tuple[float, float]]
    floor: Floor

    @property
    def mean_ranks(self) -> dict[str, float]:
        return {loss: float(r) for loss, r in zip(self.losses, self.ranks.mean(axis=0),
                                                  strict=True)}

    def best(self) -> list[str]:
        """The losses with the lowest mean rank (all of them on a tie)."""
        means = self.mean_ranks
        top = min(means.values(), default=math.nan)
        return [loss for loss, r in means.items() if r == top]


def within_dataset_ranks(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """(n, k) ranks per row, 1 = best, ties averaged."""
    return stats.rankdata(-values if higher_is_better else values, axis=1, method="average")


def friedman(values: np.ndarray) -> tuple[float, float]:
    """(χ²_F, p) over the columns of (n, k) values; NaN for k < 3 (scipy needs 3 groups)."""
    if values.shape[1] < 3:
        return math.nan, math.nan
    result = stats.friedmanchisquare(*values.T)
    return float(result.statistic), float(result.pvalue)


def nemenyi(values: np.ndarray, losses) -> pd.DataFrame | None:
    """(k, k) Nemenyi p-values after Friedman, indexed by loss; None for k < 3."""
    if values.shape[1] < 3:
        return None
    table = sp.posthoc_nemenyi_friedman(values)
    table.index = table.columns = list(losses)
    return table


def critical_difference(k: int, n: int, alpha: float = ALPHA) -> float:
    """Nemenyi's CD in mean-rank units; NaN for k < 2 or n < 1."""
    if k < 2 or n < 1:
        return math.nan
    q_alpha = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q_alpha * math.sqrt(k * (k + 1) / (6 * n)))


def wilcoxon_p(x: np.ndarray, reference: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of paired x − reference (1 when every difference is
    0: no evidence either way; scipy warns and divides by zero there)."""
    if not np.any(x - reference):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.wilcoxon(x, reference).pvalue)


def floor(n: int, k: int) -> Floor:
    """Each test run on the most extreme (n, k) table: every dataset ranks the losses alike."""
    if n < 1 or k < 2:
        return Floor(math.nan, math.nan, math.nan)
    extreme = np.tile(np.arange(k, dtype=np.float64), (n, 1))
    found_nemenyi = nemenyi(extreme, range(k))
    return Floor(
        friedman=friedman(extreme)[1],
        nemenyi=math.nan if found_nemenyi is None else float(found_nemenyi.to_numpy().min()),
        wilcoxon=wilcoxon_p(np.arange(1.0, n + 1), np.zeros(n)),
    )


def power_note(n: int, k: int) -> str:
    """What n datasets and k losses can show, from `floor`: "" when every test can reach
    ALPHA; else which tests cannot, or that no difference can be significant."""
    low = floor(n, k)
    if n < 1 or k < 2:
        return ""
    datasets = "1 dataset" if n == 1 else f"{n} datasets"
    holm_first = min(1.0, low.wilcoxon * (k - 1))
    floors = [("Friedman's test", f"p ≥ {low.friedman:.3g}", low.friedman),
              ("Nemenyi's test", f"p ≥ {low.nemenyi:.3g}", low.nemenyi)] if k >= 3 else []
    floors.append(("the Wilcoxon test against the reference", f"p ≥ {low.wilcoxon:.3g} before "
                   f"Holm over {k - 1}, {holm_first:.3g} after", holm_first))
    blocked = [(name, text) for name, text, p in floors if p >= ALPHA]
    if not blocked:
        return ""
    details = "; ".join(f"{name}: {text}" for name, text in blocked)
    alike = f"even if every dataset ranked the {k} losses alike"
    if not low.can_be_significant(k):
        return (f"With {datasets} no difference can be significant at α = {ALPHA:g}: {alike}, "
                f"{details}. More datasets, not more seeds, give these tests power.")
    names = " and ".join(name for name, _ in blocked)
    return f"With {datasets} {names} cannot be significant ({details}), {alike}."


def _mean(summary: TaskSummary, loss: str, metric: Metric) -> float:
    """The loss's mean over seeds on one dataset; NaN when it has no value."""
    stat = summary.stats.get(loss, {}).get(metric.key)
    return math.nan if stat is None or stat.n == 0 else stat.mean


def across_datasets(per_dataset: dict[str, TaskSummary], metric: Metric,
                    reference: str) -> Across | None:
    """The cross-dataset statistics of one task's `metric`; None with no loss on every
    dataset.

    Args:
        per_dataset: dataset → that dataset's TaskSummary of the task (`summary.summarize`).
    """
    datasets = tuple(per_dataset)
    order = list(dict.fromkeys(loss for s in per_dataset.values() for loss in s.stats))
    complete = [loss for loss in order
                if all(np.isfinite(_mean(s, loss, metric)) for s in per_dataset.values())]
    if not complete:
        return None
    values = np.array([[_mean(s, loss, metric) for loss in complete]
                       for s in per_dataset.values()])
    ranks = within_dataset_ranks(values, metric.higher_is_better)
    statistic, p = friedman(values)
    tests = {}
    if reference in complete:
        ref = values[:, complete.index(reference)]
        raw = {loss: wilcoxon_p(values[:, j], ref) for j, loss in enumerate(complete)
               if loss != reference}
        tests = {loss: (q, float(adjusted)) for (loss, q), adjusted in
                 zip(raw.items(), holm(list(raw.values())), strict=True)}
    n, k = values.shape
    return Across(
        task=next(iter(per_dataset.values())).task, metric=metric, reference=reference,
        datasets=datasets, losses=tuple(complete),
        left_out=tuple(loss for loss in order if loss not in complete), values=values,
        ranks=ranks, friedman_statistic=statistic, friedman_p=p,
        nemenyi=nemenyi(values, complete), critical_difference=critical_difference(k, n),
        wilcoxon=tests, floor=floor(n, k),
    )
