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


def check_nonnegative(name, value):
    """Returns `value` as a float if it is a finite number >= 0, else raises ValueError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Invalid {name}={value!r}: expected a number >= 0.") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"Invalid {name}={value!r}: expected a finite number >= 0.")
    return number


def check_weights(name, values):
    """Returns `values` as a list of floats: 1-D, non-empty, finite and >= 0.

    Used for per-class weights (`class_weights`, per-class `alpha`); the list form is what
    `get_config()` stores, so a config stays plain JSON.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"Invalid {name}: expected a non-empty 1-D list of per-class values, "
            f"got shape {array.shape}."
        )
    bad = ~np.isfinite(array) | (array < 0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"Invalid {name}[{index}]={float(array[index])!r}: every value must be finite and >= 0."
        )
    return [float(v) for v in array]


def check_num_classes(name, weights, num_classes):
    """Raises ValueError when a per-class list does not match the static class count.

    `num_classes` is the last dimension of `y_pred`; it is None when unknown at trace time,
    in which case nothing can be checked here.
    """
    if num_classes is not None and len(weights) != num_classes:
        raise ValueError(
            f"Invalid {name}: got {len(weights)} values but y_pred has {num_classes} classes."
        )
