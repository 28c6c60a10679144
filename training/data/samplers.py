"""Class-rebalancing samplers of a classification epoch (Kang et al., ICLR 2020).

Class c is drawn with probability p_c ∝ n_c^q: q = 1 `instance` (every image once, a plain
permutation), q = 0 `class_balanced`, q = ½ `sqrt`, and `progressive`, whose q moves linearly
from 1 at the first epoch to 0 at the last (Kang et al. interpolate the two distributions
instead; moving the exponent passes through the square-root sampler on the way).

An epoch has N draws (N training images), so steps per epoch do not change with the sampler.
Each draw picks a class from p, then the next image of that class's own permutation (a class
whose permutation runs out is re-permuted): a tail class's images repeat as evenly as possible.
Everything is a pure function of (seed, epoch) through `np.random.default_rng([seed, epoch])`,
so a resumed run replays the uninterrupted one. NumPy only: config validation reads `SAMPLERS`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SAMPLERS = ("instance", "class_balanced", "sqrt", "progressive")
EXPONENTS = {"instance": 1.0, "class_balanced": 0.0, "sqrt": 0.5}


def exponent(sampler: str, epoch: int, epochs: int) -> float:
    """q of the 0-based `epoch` of `epochs`: fixed, or 1 − epoch/(epochs − 1) for progressive."""
    if sampler == "progressive":
        return 1.0 - min(epoch, epochs - 1) / max(epochs - 1, 1)
    if sampler not in EXPONENTS:
        raise ValueError(f"sampler={sampler!r} is not valid; choose one of: {', '.join(SAMPLERS)}")
    return EXPONENTS[sampler]


def class_probabilities(counts, q: float) -> np.ndarray:
    """float64 (C,) p_c = n_c^q / Σ_k n_k^q over the classes with n_c > 0 (0 for the others)."""
    counts = np.asarray(counts, np.float64)
    present = counts > 0
    weights = np.where(present, np.power(np.where(present, counts, 1.0), q), 0.0)
    return weights / weights.sum()


def epoch_indices(y, q: float, seed: int, epoch: int) -> np.ndarray:
    """int64 (N,): the image indices of one epoch under p_c ∝ n_c^q.

    q = 1 is `default_rng([seed, epoch]).permutation(N)`, the pipeline's plain epoch."""
    y = np.asarray(y)
    rng = np.random.default_rng([seed, epoch])
    if q == 1.0:
        return rng.permutation(len(y)).astype(np.int64)
    counts = np.bincount(y)
    draws = rng.choice(counts.size, size=len(y), p=class_probabilities(counts, q))
    out = np.empty(len(y), np.int64)
    for c in np.flatnonzero(np.bincount(draws, minlength=counts.size)):
        members = np.flatnonzero(y == c)
        slots = np.flatnonzero(draws == c)
        rounds = -(-slots.size // members.size)  # ceil: whole permutations of the class
        out[slots] = np.concatenate([rng.permutation(members) for _ in range(rounds)])[: slots.size]
    return out


def epoch_index_function(sampler: str, y, seed: int, epochs: int) -> Callable[[int], np.ndarray]:
    """epoch → int64 (N,) indices for `classification_dataset(epoch_indices=...)`."""
    exponent(sampler, 0, epochs)  # fails early on an unknown name
    y = np.asarray(y)
    return lambda epoch: epoch_indices(y, exponent(sampler, epoch, epochs), seed, epoch)
