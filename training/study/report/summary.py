"""Numbers of the report: per loss, mean ± std over seeds, and the paired comparison of each
loss with the task's reference loss.

- `Stat`: mean, sample std (ddof = 1, NaN for a single seed) and n over the finished seeds.
- `Paired`: seed s gives every loss the same split and initial weights, so a loss is compared
  with the reference on the per-seed differences d_s = x_s − ref_s over the seeds both
  finished: mean d̄, 95 % t interval d̄ ± t(0.975, n − 1)·sd(d)/√n, two-sided paired t-test
  (`scipy.stats.ttest_rel`). Fewer than 2 pairs: no statistics.
- `holm`: Holm–Bonferroni step-down (statsmodels) across the losses compared with one
  reference, per metric. A loss is better or worse than the reference only where p_holm < `ALPHA`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from training import metric_catalog

TAIL_SHARE = 0.3  # tail recall: the rarest 30 % of classes by training count
ALPHA = 0.05  # significance level of the Holm-corrected paired t-test
CONFIDENCE = 0.95  # of the interval of a difference


@dataclasses.dataclass(frozen=True)
class Metric:
    """One column of the report, made from a `metric_catalog` entry (`column`).

    Attributes:
        key: the metric name as the trainer logs it (`test/accuracy`); `test/tail_recall` is
            the one the report computes (from each run's per-class recall).
        optional: a column only when some run logged it (metrics newer runs add).
        ranked: False for a metric with no better direction (a coverage): never bold, ▲/▼.
    """

    key: str
    label: str
    higher_is_better: bool = True
    optional: bool = False
    ranked: bool = True


def column(spec: metric_catalog.MetricSpec) -> Metric:
    """The report column of a catalogue entry, on the test split."""
    return Metric(spec.name("test"), spec.label, spec.higher_is_better, spec.optional,
                  spec.ranked)


TAIL_RECALL = column(metric_catalog.metric("tail_recall"))
# task → its columns, in the catalogue's order
METRICS: dict[str, tuple[Metric, ...]] = {
    task: tuple(column(m) for m in metric_catalog.columns(task))
    for task in metric_catalog.task_names()
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


@dataclasses.dataclass(frozen=True)
class Paired:
    """A loss minus the reference, paired by seed. Every float is NaN when n < 2; p_holm is
    NaN until `holm` has seen the other losses' p-values (`summarize` fills it)."""

    n: int
    delta_mean: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    p_holm: float = math.nan

    @classmethod
    def of(cls, values: dict[int, float], reference: dict[int, float]) -> Paired:
        """Differences over the seeds where both have a finite value.

        Args:
            values, reference: seed → the metric's value in that seed's run.
        """
        seeds = sorted(s for s in values.keys() & reference.keys()
                       if np.isfinite(values[s]) and np.isfinite(reference[s]))
        if len(seeds) < 2:
            return cls(len(seeds))
        x = np.array([values[s] for s in seeds])
        ref = np.array([reference[s] for s in seeds])
        d = x - ref
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
        with warnings.catch_warnings():  # near-constant differences: scipy warns, still answers
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_rel(x, ref).pvalue)  # NaN when every difference is 0
        mean = float(d.mean())
        return cls(d.size, mean, mean - half, mean + half, p)

    def crosses_zero(self) -> bool:
        return self.ci_low < 0 < self.ci_high


def holm(p_values) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (statsmodels' `multipletests`), same order; NaN
    entries stay NaN and do not count among the m tests.

    Step-down: with the m finite p sorted ascending, p_holm(i) = max_{j ≤ i} min(1, (m − j + 1)
    p(j)) (1-based ranks).
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    present = np.isfinite(p)
    if present.any():
        out[present] = multipletests(p[present], method="holm")[1]
    return out


def verdict(paired: Paired | None, metric: Metric) -> str | None:
    """"better" / "worse" than the reference where p_holm < ALPHA, else None."""
    if paired is None or not metric.ranked or not paired.p_holm < ALPHA:
        return None
    return "better" if (paired.delta_mean > 0) == metric.higher_is_better else "worse"


# --- values of one run ----------------------------------------------------------------------


def tail_classes(train_counts, share: float = TAIL_SHARE) -> np.ndarray:
    """The rarest ⌊share·C⌋ classes (at least 1) by training count, rarest first.

    Ties (e.g. a balanced split) go to the higher class index, the tail end of the long-tail
    profile, which puts class 0 at the head.
    """
    counts = np.asarray(train_counts)
    k = max(1, math.floor(share * counts.size + 1e-9))  # +1e-9: 0.3 * 10 must give 3
    order = np.lexsort((-np.arange(counts.size), counts))  # count ascending, then index desc.
    return order[:k]


def tail_recall(recall, train_counts) -> float:
    """Mean test recall over `tail_classes(train_counts)`; classes without a recall (NaN:
    absent from the test split, or beyond `recall`'s length) are skipped."""
    if recall is None or train_counts is None:
        return math.nan
    recall = np.asarray(recall, dtype=np.float64)
    padded = np.full(len(train_counts), math.nan)
    padded[: min(recall.size, padded.size)] = recall[: padded.size]
    values = padded[tail_classes(train_counts)]
    return float(np.mean(values[np.isfinite(values)])) if np.isfinite(values).any() else math.nan


def value(child, metric: Metric) -> float:
    """One run's value of `metric` (NaN when it was not logged)."""
    if metric == TAIL_RECALL:
        return tail_recall(child.recall, child.train_counts)
    return float(child.metrics.get(metric.key, math.nan))


# --- the table of one task ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TaskSummary:
    """One task of a compare.

    Attributes:
        reference: the loss the others are compared with.
        metrics: the report's columns (optional metrics only when some run logged them).
        stats: loss → metric key → Stat, losses in the compare's order.
        paired: loss → metric key → Paired, for every loss but the reference (p_holm set).
    """

    task: str
    reference: str
    metrics: tuple[Metric, ...]
    stats: dict[str, dict[str, Stat]]
    paired: dict[str, dict[str, Paired]]

    def verdict(self, loss: str, metric: Metric) -> str | None:
        return verdict(self.paired.get(loss, {}).get(metric.key), metric)

    def best(self, metric: Metric) -> list[str]:
        """The losses with the best mean of `metric` (all of them on a tie); [] when none has
        a value."""
        means = {loss: s[metric.key].mean for loss, s in self.stats.items()
                 if s[metric.key].n > 0}
        if not means or not metric.ranked:
            return []
        top = (max if metric.higher_is_better else min)(means.values())
        return [loss for loss, mean in means.items() if mean == top]

    def headline(self) -> Metric:
        """The task's first headline column (`metric_catalog`: test/balanced_accuracy)."""
        key = metric_catalog.headline(self.task)[0].name("test")
        return next((m for m in self.metrics if m.key == key), self.metrics[0])


def summarize(runs, references: dict[str, str]) -> dict[str, TaskSummary]:
    """task → TaskSummary over the finished children of a `CompareRuns`.

    Args:
        references: task → the reference loss of that task (`collect.references`).
    """
    out: dict[str, TaskSummary] = {}
    for task in runs.tasks():
        children = runs.finished(task)
        per_seed = {}  # loss → metric key → seed → value
        for variant in runs.variants:
            mine = [c for c in children if c.variant == variant]
            if mine:
                per_seed[variant] = {m.key: {c.seed: value(c, m) for c in mine}
                                     for m in METRICS[task]}
        metrics = tuple(m for m in METRICS[task] if not m.optional or any(
            np.isfinite(list(v[m.key].values())).any() for v in per_seed.values()))
        stats_ = {loss: {m.key: Stat.of(list(v[m.key].values())) for m in metrics}
                  for loss, v in per_seed.items()}
        reference = references[task]
        ref_values = per_seed.get(reference, {})
        raw = {loss: {m.key: Paired.of(v[m.key], ref_values.get(m.key, {})) for m in metrics}
               for loss, v in per_seed.items() if loss != reference}
        paired: dict[str, dict[str, Paired]] = {loss: {} for loss in raw}
        for m in metrics:  # Holm over the losses compared with the reference, per metric
            adjusted = holm([raw[loss][m.key].p_value for loss in raw])
            for loss, p_holm in zip(raw, adjusted, strict=True):
                paired[loss][m.key] = dataclasses.replace(raw[loss][m.key], p_holm=float(p_holm))
        out[task] = TaskSummary(task, reference, metrics, stats_, paired)
    return out


# --- does a loss beat CE plus a free fix? ---------------------------------------------------
# The classifier-level fixes any CE model gets without retraining (metrics of every run):
# post-hoc logit adjustment and τ-normalisation. Which one CE gets is chosen on val.
FREE_FIXES = {m.fix: m.key for m in metric_catalog.free_fixes()}  # fix name → metric key
FREE_FIX_REFERENCE = "ce"


@dataclasses.dataclass(frozen=True)
class FreeFixAnswer:
    """A loss's end-to-end test balanced accuracy against CE + its free fix, paired by seed."""

    loss: str
    fix: str
    paired: Paired

    def sentence(self) -> str:
        against = f"{FREE_FIX_REFERENCE} + {self.fix}"
        p = self.paired
        if p.n < 2:
            return f"{self.loss}: {p.n} seed paired with {against}, too few to answer."
        numbers = (f"Δ balanced accuracy {p.delta_mean:+.4f} [{p.ci_low:+.4f}, {p.ci_high:+.4f}], "
                   f"p_holm {p.p_holm:.3g}, {p.n} seeds")
        if p.p_holm < ALPHA:
            word = "beats" if p.delta_mean > 0 else "is worse than"
            return f"**{self.loss}** {word} {against} ({numbers})."
        return f"{self.loss} does not beat {against} ({numbers})."


def against_free_fix(runs, task: str = "classification") -> list[FreeFixAnswer]:
    """One answer per loss of the compare but `ce`: its test balanced accuracy, paired by seed
    with CE's test balanced accuracy under the free fix whose mean val value is the higher
    (never chosen on test); Holm across the losses. [] without finished CE runs or fixes."""
    children = runs.finished(task)
    reference = [c for c in children if c.variant == FREE_FIX_REFERENCE]
    val_means = {}
    for fix, key in FREE_FIXES.items():
        values = [c.metrics[f"val/{key}"] for c in reference if f"val/{key}" in c.metrics]
        if values:
            val_means[fix] = float(np.mean(values))
    if not val_means:
        return []
    fix = max(val_means, key=val_means.get)  # the first on ties
    ref = {c.seed: c.metrics.get(f"test/{FREE_FIXES[fix]}", math.nan) for c in reference}
    raw = {variant: Paired.of({c.seed: c.metrics.get("test/balanced_accuracy", math.nan)
                               for c in children if c.variant == variant}, ref)
           for variant in runs.variants
           if variant != FREE_FIX_REFERENCE and any(c.variant == variant for c in children)}
    adjusted = holm([p.p_value for p in raw.values()])
    return [FreeFixAnswer(loss, fix, dataclasses.replace(p, p_holm=float(q)))
            for (loss, p), q in zip(raw.items(), adjusted, strict=True)]
