"""The curvature of a run: ``hessian_spectrum`` with the run's loss on the landscape's subset.

At the end of a run (``curvature=true``, implied by ``landscape=true``), on the landscape's
fixed training subset (``landscape_examples``, seed 0), logged at step = epochs trained:
``landscape/hessian_top1..top{k}``, ``hessian_min``, ``hessian_trace`` (+ ``_stderr``,
``_probes``), ``sharpness_rho`` (+ ``_radius``, ``_steps``), the spectral density figure and
its raw values, and what each measure cost (``cost_<measure>_seconds``, ``cost_<measure>_hv``
in Hessian-vector products, ``curvature_seconds`` in all). ``curvature_per_class=true``: the top and most negative eigenvalue of each
class's loss (up to ``max(16, landscape_examples // classes)`` training images of the class,
seeded), as a table and a figure against the class's training count. ``curvature_every=E``:
the scalar measures every E epochs (not the density, not per class), at step = epoch.
"""

from __future__ import annotations

import time

import keras
import mlflow
import numpy as np

from training.landscape.from_run import landscape_subset
from training.landscape.hessian import (
    HessianOfLoss,
    hessian_spectrum,
    min_eigenvalue,
    top_eigenvalues,
)
from training.landscape.tracking import log_curvature, log_per_class_curvature

DENSITY_STEPS = 48  # SLQ Lanczos steps of the run's density figure (one probe): 48 Hv products
PER_CLASS_MIN = 16  # images per class at least, when the class has them


def wants_curvature(config) -> bool:
    """The end-of-run measures: ``curvature=true`` or ``landscape=true``."""
    return bool(config.curvature or config.landscape)


def curvature_of_config(config, model: keras.Model, loss_fn, x_train: np.ndarray,
                        y_train: np.ndarray, *, seed: int = 0, density: bool = True) -> dict:
    """``hessian_spectrum`` with the run's settings on the landscape subset (seed ``seed``)."""
    x, y = landscape_subset(x_train, y_train, config.landscape_examples, seed)
    return hessian_spectrum(
        model, loss_fn, x, y, k=config.curvature_k, seed=seed, probes=config.curvature_probes,
        rho=config.sharpness_rho, rho_steps=config.sharpness_steps,
        adaptive=config.sharpness_adaptive, density_steps=DENSITY_STEPS if density else 0,
        single_batch=config.task == "retrieval",
    )


def per_class_curvature(model: keras.Model, loss_fn, x: np.ndarray, y: np.ndarray,
                        num_classes: int, *, examples: int, seed: int = 0) -> dict:
    """Top and most negative Hessian eigenvalue of each class's mean loss.

    Class ``c`` is measured on the first ``examples`` of its training images in a permutation
    seeded by ``(seed, c)`` (all of them when fewer). Cost per class: one top and one minimum
    Lanczos run on that subset. Returns ``top``, ``min`` and ``examples``, each ``(C,)``
    (NaN where a class has no image).
    """
    top, minimum = np.full(num_classes, np.nan), np.full(num_classes, np.nan)
    used = np.zeros(num_classes, np.int64)
    for c in range(num_classes):
        rng = np.random.default_rng([seed, c])
        index = rng.permutation(np.flatnonzero(y == c))[:examples]
        used[c] = len(index)
        if not len(index):
            continue
        hessian = HessianOfLoss(model, loss_fn, x[index], y[index])
        top[c] = top_eigenvalues(hessian.operator(), hessian.dim, 1, seed=seed)[0]
        minimum[c] = min_eigenvalue(hessian.operator(), hessian.dim, seed=seed)
    return {"top": top, "min": minimum, "examples": used}


def log_for_run(config, model: keras.Model, loss_fn, splits, *, step: int, title: str) -> dict:
    """The end-of-run curvature (and per class when asked), logged into the active run."""
    started = time.perf_counter()
    result = curvature_of_config(config, model, loss_fn, splits.x_train, splits.y_train)
    log_curvature(result, step=step, title=title)
    if config.curvature_per_class:
        classes = splits.num_classes
        examples = max(PER_CLASS_MIN, config.landscape_examples // classes)
        per_class = per_class_curvature(model, loss_fn, splits.x_train, splits.y_train, classes,
                                        examples=examples)
        counts = np.bincount(splits.y_train, minlength=classes)
        names = [str(n) for n in list(splits.class_names)[:classes]]
        log_per_class_curvature(per_class, counts, names, title=title)
    costs = {f"landscape/cost_{name}_seconds": v for name, v in result["seconds"].items()}
    costs.update({f"landscape/cost_{name}_hv": v for name, v in result["products"].items()})
    costs["landscape/curvature_seconds"] = time.perf_counter() - started
    mlflow.log_metrics(costs, step=step)
    return result


class CurvatureEvery(keras.callbacks.Callback):
    """The scalar curvature measures after every ``every``-th epoch, at step = epoch (from 1).

    The last epoch is left to the end-of-run measure (same step, same values).
    """

    def __init__(self, config, loss_fn, x_train: np.ndarray, y_train: np.ndarray):
        super().__init__()
        self.config, self.loss_fn, self.x, self.y = config, loss_fn, x_train, y_train

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.config.curvature_every or done >= self.config.epochs:
            return
        result = curvature_of_config(self.config, self.model, self.loss_fn, self.x, self.y,
                                     density=False)
        log_curvature(result, step=done, figures=False)


def curvature_callbacks(config, loss_fn, splits) -> list[keras.callbacks.Callback]:
    """``[CurvatureEvery]`` when ``curvature_every`` is set, else ``[]``."""
    if not config.curvature_every:
        return []
    return [CurvatureEvery(config, loss_fn, splits.x_train, splits.y_train)]
