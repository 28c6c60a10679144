"""Slow, explicit NumPy references of the regression losses, written from the formulas in
/work/shared/REFERENCES.md (round 3), not from losses/: float64, one sample and one column
at a time. `y` is (B,) targets, `pred` (B, K) predictions."""

import math

import numpy as np


def _per_sample(y, pred, term):
    """mean_k term(pred[i, k] − y[i]) for each sample i (targets broadcast over columns)."""
    out = []
    for target, row in zip(y, np.atleast_2d(pred), strict=True):
        out.append(sum(term(float(p) - float(target)) for p in row) / len(row))
    return np.array(out)


def mse(y, pred):
    return _per_sample(y, pred, lambda e: e * e)


def mae(y, pred):
    return _per_sample(y, pred, abs)


def huber(y, pred, delta):
    return _per_sample(y, pred, lambda e: 0.5 * e * e if abs(e) <= delta
                       else delta * (abs(e) - 0.5 * delta))


def log_cosh(y, pred):
    return _per_sample(y, pred, lambda e: math.log(math.cosh(e)))


def pinball(y, pred, quantiles, crossing=0.0):
    """mean_j ρ_τj(y − ŷ_j) + λ Σ_j max(0, ŷ_j − ŷ_j+1), ρ_τ(u) = max(τu, (τ − 1)u)."""
    out = []
    for target, row in zip(y, pred, strict=True):
        rho = [max(t * (target - p), (t - 1) * (target - p))
               for t, p in zip(quantiles, row, strict=True)]
        cross = sum(max(0.0, float(row[j]) - float(row[j + 1])) for j in range(len(row) - 1))
        out.append(sum(rho) / len(rho) + crossing * cross)
    return np.array(out)


def gaussian_nll(y, pred, beta, min_variance):
    """(σ²)^β · ½ (log σ² + (y − μ)²/σ²), σ² = max(exp(s), min_variance) (s finite, small)."""
    out = []
    for target, (mean, log_var) in zip(y, pred, strict=True):
        var = max(math.exp(log_var), min_variance)
        out.append(var**beta * 0.5 * (math.log(var) + (target - mean) ** 2 / var))
    return np.array(out)
