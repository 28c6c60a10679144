"""Tables for regression: raw columns in RAM, checked, then encoded with the training split.

A `Table` holds what a source read (a CSV, scikit-learn's diabetes): one NumPy array per
feature column (float64, or str for categorical columns), float targets and optional
per-row weights. `check_table` finds NaN/inf and bad weights before anything is split (and
with `drop_nan=true` drops the rows); `encode` turns rows into float32 features once the
split is known, with the *training* rows' categories (one-hot), and `feature_stats` gives the
training rows' mean and variance of the numeric features, which the model's Normalization
layer holds (so the logged model takes raw rows).

Cost: N rows × F columns of float64, a few MB for 100k rows; encoding is one pass per column.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from training.errors import DataError

SHOWN_ROWS = 5  # first offending rows named in an error


@dataclasses.dataclass(frozen=True)
class Table:
    """Rows of one dataset.

    Attributes:
        name: where it came from, for messages ("csv:/data/houses.csv", "diabetes").
        columns: feature name → (N,) float64 (numeric) or str (categorical) array.
        y: float64 (N,) targets.
        weights: float64 (N,) per-row weights, or None.
        row_names: (N,) how a message names each row ("line 7"), kept through drops.
        target: the target column's name.
    """

    name: str
    columns: dict[str, np.ndarray]
    y: np.ndarray
    weights: np.ndarray | None
    row_names: tuple[str, ...]
    target: str

    def __len__(self) -> int:
        return len(self.y)

    def take(self, rows) -> Table:
        rows = np.asarray(rows, np.int64)
        return dataclasses.replace(
            self, columns={k: v[rows] for k, v in self.columns.items()}, y=self.y[rows],
            weights=None if self.weights is None else self.weights[rows],
            row_names=tuple(self.row_names[i] for i in rows))

    def numeric(self, name: str) -> bool:
        return self.columns[name].dtype.kind == "f"


def _first(rows: np.ndarray, names) -> str:
    shown = ", ".join(names[i] for i in rows[:SHOWN_ROWS])
    return shown + (" ..." if rows.size > SHOWN_ROWS else "")


def check_table(table: Table, drop_nan: bool) -> tuple[Table, int]:
    """(the table without non-finite rows, how many were dropped); DataError on NaN/inf in a
    target, weight or numeric feature (unless `drop_nan`), or on negative / all-zero weights."""
    where = {"target " + repr(table.target): table.y}
    where.update({f"feature {k!r}": v for k, v in table.columns.items() if v.dtype.kind == "f"})
    if table.weights is not None:
        where["weight"] = table.weights
    bad = np.zeros(len(table), bool)
    found = []
    for label, values in where.items():
        nonfinite = ~np.isfinite(values)
        if nonfinite.any():
            found.append(f"{label} ({int(nonfinite.sum())})")
            bad |= nonfinite
    dropped = int(bad.sum())
    if dropped and not drop_nan:
        rows = np.flatnonzero(bad)
        raise DataError(
            f"{table.name}: {dropped} row(s) hold NaN or inf in {', '.join(found)}; first: "
            f"{_first(rows, table.row_names)}; fix them, or pass drop_nan=true to drop them")
    if dropped:
        table = table.take(np.flatnonzero(~bad))
    if len(table) == 0:
        raise DataError(f"{table.name}: no rows left (all {dropped} held NaN or inf)")
    if table.weights is not None:
        negative = np.flatnonzero(table.weights < 0)
        if negative.size:
            raise DataError(
                f"{table.name}: {negative.size} negative weight(s), e.g. "
                f"{table.weights[negative[0]]:g} at {_first(negative, table.row_names)}; "
                "weights must be >= 0 with at least one > 0")
        if not (table.weights > 0).any():
            raise DataError(f"{table.name}: every weight is 0; weights must be >= 0 with at "
                            "least one > 0")
    return table, dropped


@dataclasses.dataclass(frozen=True)
class Encoding:
    """How rows become features, learned on the training rows.

    Attributes:
        names: one name per feature column of the output (`col=category` for one-hot).
        categories: categorical column → its training categories (sorted).
        numeric_mask: bool (F,), True where a feature is a numeric column (standardised).
    """

    names: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]
    numeric_mask: np.ndarray


def fit_encoding(train: Table) -> Encoding:
    names, categories, mask = [], {}, []
    for column, values in train.columns.items():
        if values.dtype.kind == "f":
            names.append(column)
            mask.append(True)
        else:
            found = tuple(sorted(set(values.tolist())))
            categories[column] = found
            names += [f"{column}={c}" for c in found]
            mask += [False] * len(found)
    return Encoding(tuple(names), categories, np.asarray(mask, bool))


def encode(table: Table, encoding: Encoding, split: str) -> np.ndarray:
    """float32 (N, F): numeric columns as they are, categorical ones one-hot on the training
    categories. A category the training rows never had is a zero row, with one warning per
    column and split naming it and its count."""
    parts = []
    for column, values in table.columns.items():
        if column not in encoding.categories:
            parts.append(values.astype(np.float32)[:, None])
            continue
        known = encoding.categories[column]
        index = {c: i for i, c in enumerate(known)}
        onehot = np.zeros((len(values), len(known)), np.float32)
        rows = [(r, index.get(v)) for r, v in enumerate(values.tolist())]
        hits = [(r, i) for r, i in rows if i is not None]
        if hits:
            r, i = np.asarray(hits).T
            onehot[r, i] = 1.0
        unseen = sorted({v for (r, i), v in zip(rows, values.tolist(), strict=True)
                         if i is None})
        if unseen:
            count = len(rows) - len(hits)
            warnings.warn(
                f"{table.name}: column {column!r} has {count} {split} row(s) with a category "
                f"the training split lacks ({', '.join(map(repr, unseen[:5]))}); they are "
                "encoded as all-zero rows", UserWarning, stacklevel=2)
        parts.append(onehot)
    if not parts:
        return np.zeros((len(table), 0), np.float32)
    return np.concatenate(parts, axis=1)


def feature_stats(x_train: np.ndarray, numeric_mask: np.ndarray):
    """(mean, variance) float32 (F,) of the training features: numeric columns' own
    statistics (the variance of a constant column is 1, so it passes unscaled), one-hot
    columns 0 and 1 (they pass as they are)."""
    x = np.asarray(x_train, np.float64)
    mean = np.where(numeric_mask, x.mean(axis=0), 0.0)
    variance = np.where(numeric_mask, x.var(axis=0), 1.0)
    variance = np.where(variance > 0, variance, 1.0)
    return mean.astype(np.float32), variance.astype(np.float32)
