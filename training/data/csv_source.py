"""``csv:PATH`` with ``target=COLUMN`` (and optionally ``weight=COLUMN``): a regression table.

The first line is the header; column names may be in any language (the file is read as
UTF-8, a byte-order mark is skipped). A column whose every non-empty cell parses as a number
is numeric (an empty cell is NaN, so it is reported like one); any other column is
categorical (one-hot encoded later, with the training split's categories). The target and
weight columns must be numeric; every other column is a feature.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from training.data.tabular import Table
from training.errors import DataError


def _number(cell: str) -> float | None:
    """float of a cell ("" is NaN), None when it is not a number."""
    text = cell.strip()
    if not text:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        return None


def _read(path: Path, name: str) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DataError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{name} is a folder; csv:PATH names a .csv file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{name} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{name} is not a readable CSV ({exc})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"{name} is empty; expected a header line, then one row per example")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header) or not all(header):
        raise DataError(f"{name}: header {header} has an empty or repeated column name")
    for number, row in enumerate(rows[1:], 2):
        if len(row) != len(header):
            raise DataError(f"{name}: data row {number - 1} has {len(row)} cells, the header "
                            f"has {len(header)} ({', '.join(header)})")
    if len(rows) == 1:
        raise DataError(f"{name} holds a header ({', '.join(header)}) but no rows")
    return header, rows[1:]


def _numeric_column(name: str, column: str, cells: list[str], role: str) -> np.ndarray:
    values = [_number(c) for c in cells]
    bad = [i for i, v in enumerate(values) if v is None]
    if bad:
        raise DataError(f"{name}: the {role} column {column!r} is not numeric: "
                        f"{cells[bad[0]]!r} at line {bad[0] + 2} ({len(bad)} such cell(s)); "
                        f"the {role} must be a number in every row")
    return np.asarray(values, np.float64)


def load_csv(path: str, target: str | None, weight: str | None = None) -> Table:
    """The table of the CSV at `path`; DataError for a missing file, an empty or ragged CSV,
    a missing or non-numeric target/weight column (naming the columns there are)."""
    name = f"csv:{path}"
    header, rows = _read(Path(path).expanduser(), name)
    for role, column in (("target", target), ("weight", weight)):
        if column is None and role == "target":
            raise DataError(f"{name} needs target=COLUMN, the column to predict; columns: "
                            f"{', '.join(header)}")
        if column is not None and column not in header:
            raise DataError(f"{name}: no {role} column {column!r}; columns: {', '.join(header)}")
    if weight == target:
        raise DataError(f"{name}: weight={weight!r} is the target column; choose another")
    by_column = {h: [row[i] for row in rows] for i, h in enumerate(header)}
    y = _numeric_column(name, target, by_column.pop(target), "target")
    weights = (_numeric_column(name, weight, by_column.pop(weight), "weight")
               if weight is not None else None)
    columns = {}
    for column, cells in by_column.items():
        values = [_number(c) for c in cells]
        if all(v is not None for v in values):
            columns[column] = np.asarray(values, np.float64)
        else:  # categorical: the stripped text is the category
            columns[column] = np.asarray([c.strip() for c in cells], dtype=str)
    row_names = tuple(f"line {i}" for i in range(2, len(rows) + 2))
    return Table(name, columns, y, weights, row_names, target)
