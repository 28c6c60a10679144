"""Argument validation shared by the losses: fail at construction, naming the bad value."""

import math

import numpy as np


def check_choice(name, value, choices):
    """Returns `value` if it is one of `choices`, else raises ValueError listing them."""
    if value not in choices:
        raise ValueError(
            f"Invalid {name}={value!r}. Expected one of: {', '.join(map(repr, choices))}."
        )
    return value


_BOUNDS = {"": lambda x: True, ">= 0": lambda x: x >= 0, "> 0": lambda x: x > 0}


def _check_number(name, value, bound=""):
    """float(value) if it is a finite number within `bound` (a key of _BOUNDS), else
    ValueError naming the value and the bound."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan  # not a number at all: reported like a non-finite one
    if not (math.isfinite(number) and _BOUNDS[bound](number)):
        expected = f"a finite number {bound}".rstrip()
        raise ValueError(f"Invalid {name}={value!r}: expected {expected}.")
    return number


def check_finite(name, value):
    """Returns `value` as a float if it is a finite number, else raises ValueError."""
    return _check_number(name, value)


def check_nonnegative(name, value):
    """Returns `value` as a float if it is a finite number >= 0, else raises ValueError."""
    return _check_number(name, value, ">= 0")


def check_positive(name, value):
    """Returns `value` as a float if it is a finite number > 0, else raises ValueError."""
    return _check_number(name, value, "> 0")


def _per_class(name, values, what):
    """`values` as a float64 array if it is a non-empty 1-D list, else ValueError."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"Invalid {name}={values!r}: expected a list of per-class {what}."
        ) from None
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"Invalid {name}: expected a non-empty 1-D list of per-class {what}, "
            f"got shape {array.shape}."
        )
    return array


def _reject_first(name, array, bad, rule):
    """ValueError naming the first entry where the boolean array `bad` is True."""
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(f"Invalid {name}[{index}]={float(array[index])!r}: {rule}.")


def check_weights(name, values):
    """Returns `values` as a list of floats: 1-D, non-empty, finite and >= 0.

    Used for per-class weights (`class_weights`, per-class `alpha`); the list form is what
    `get_config()` stores, so a config stays plain JSON.
    """
    array = _per_class(name, values, "values")
    bad = ~np.isfinite(array) | (array < 0)
    _reject_first(name, array, bad, "every value must be finite and >= 0")
    return [float(v) for v in array]


def check_counts(name, values):
    """Returns `values` as a list of ints if it is a non-empty 1-D list of positive integers
    (per-class example counts n_c), else raises ValueError naming the first bad entry."""
    array = _per_class(name, values, "counts")
    with np.errstate(invalid="ignore"):  # inf and nan are caught by isfinite
        bad = ~np.isfinite(array) | (array <= 0) | (np.mod(array, 1) != 0)
    _reject_first(name, array, bad, "every count must be a positive integer")
    return [int(n) for n in array]


def check_num_classes(name, weights, num_classes):
    """Raises ValueError when a per-class list does not match the static class count.

    `num_classes` is the last dimension of `y_pred`; it is None when unknown at trace time,
    in which case nothing can be checked here.
    """
    if num_classes is not None and len(weights) != num_classes:
        raise ValueError(
            f"Invalid {name}: got {len(weights)} values but y_pred has {num_classes} classes."
        )
