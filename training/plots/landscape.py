"""Figures of a `training.landscape.Landscape` (re-exported there as `figures`, `side_by_side`).

``figures(landscape, title)`` returns, by file name:
- ``landscape_line.png``: loss along the initial -> final line, both ends marked.
- ``landscape_contour.png``: 2-D slice as labelled contours, the sharpness ring dashed.
- ``landscape_surface.png``: the same slice as a 3-D surface.
- ``landscape_sharpness.png``: loss around the sharpness ring vs. the centre loss.
``spectral_density_figure`` and ``per_class_curvature_figure`` draw the Hessian measures of
``training.landscape.curvature`` (eigenvalue density; each class's top and most negative
eigenvalue, head → tail).
``side_by_side(landscapes, title)`` puts several runs' slices on one colour scale (for the
compare report: same seed, same directions, same levels) next to their overlaid line profiles.
When the loss spans more than a decade (common at radius 1) the values are drawn on a
log scale, otherwise the basin would be one flat colour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from training.plots.figure import GRID_ALPHA, new_figure

if TYPE_CHECKING:  # only annotations: training.landscape imports Keras, plotting must not
    from training.landscape.landscape import Landscape

LOG_RANGE = 10.0  # max/min above which values are drawn on a log scale (one decade)
CONTOUR_LEVELS = 12


def _use_log(values: np.ndarray) -> bool:
    """True when all finite values are > 0 and span more than ``LOG_RANGE``."""
    finite = values[np.isfinite(values)]
    return finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() > LOG_RANGE


def line_figure(landscape: Landscape, title: str) -> Figure:
    """Loss vs. alpha on the straight line from the initial (0) to the final (1) weights."""
    figure = new_figure()
    axes = figure.add_subplot()
    axes.plot(landscape.alphas, landscape.profile, "-o", markersize=3, color="tab:blue")
    for alpha, name, color in ((0.0, "initial", "tab:red"), (1.0, "final", "tab:green")):
        axes.axvline(alpha, color=color, linestyle="--", linewidth=1)
        value = np.interp(alpha, landscape.alphas, landscape.profile)
        axes.plot([alpha], [value], "s", color=color, label=f"{name} weights: {value:.4g}")
    if _use_log(landscape.profile):
        axes.set_yscale("log")
    axes.set_xlabel("α   (weights = (1 − α)·initial + α·final)")
    axes.set_ylabel("loss")
    axes.set_title(f"{title}\nloss along the initial → final line (Goodfellow et al. 2015)")
    axes.grid(alpha=GRID_ALPHA)
    axes.legend()
    return figure


def _levels(grid: np.ndarray, log: bool) -> np.ndarray:
    """Contour levels spanning the finite grid values, geometric when ``log``."""
    finite = grid[np.isfinite(grid)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    if high <= low:  # a flat slice: a small band around the value keeps contourf valid
        low, high = low - 0.5 * abs(low) - 1e-6, high + 0.5 * abs(high) + 1e-6
        log = log and low > 0
    spacing = np.geomspace if log else np.linspace
    return spacing(low, high, CONTOUR_LEVELS)


def _colorbar(figure: Figure, mappable, axes, levels: np.ndarray, log: bool) -> None:
    """Colour bar ticked at the contour levels, as plain 3-digit numbers even on a log scale."""
    bar = figure.colorbar(mappable, ax=axes, label="loss (log scale)" if log else "loss",
                          ticks=levels, format="%.3g")
    bar.minorticks_off()


def contour_figure(landscape: Landscape, title: str) -> Figure:
    """Labelled contours of the 2-D slice; star = final weights, dashed = sharpness ring."""
    figure = new_figure((6.4, 5.6))
    axes = figure.add_subplot()
    image = np.ma.masked_invalid(landscape.grid.T)  # rows = d2, columns = d1
    log = _use_log(landscape.grid)
    levels = _levels(landscape.grid, log)
    norm = LogNorm(levels[0], levels[-1]) if log else None
    filled = axes.contourf(landscape.coords, landscape.coords, image, levels=levels, norm=norm,
                           cmap="viridis", extend="both")
    lines = axes.contour(landscape.coords, landscape.coords, image, levels=levels, norm=norm,
                         colors="white", linewidths=0.6)
    axes.clabel(lines, fmt="%.3g", fontsize=7)
    _colorbar(figure, filled, axes, levels, log)
    axes.plot([0], [0], "*", color="red", markersize=14,
              label=f"final weights: {landscape.center_loss:.4g}")
    angles = np.linspace(0, 2 * np.pi, 200)
    r = landscape.sharpness_radius
    axes.plot(r * np.cos(angles), r * np.sin(angles), "--", color="orange",
              label=f"ring r={r:g}: sharpness {landscape.sharpness:+.4g}")
    axes.set_aspect("equal")
    axes.set_xlabel("direction 1 (filter-normalized)")
    axes.set_ylabel("direction 2 (filter-normalized)")
    axes.set_title(f"{title}\n2-D slice around the final weights (Li et al. 2018), "
                   f"seed {landscape.seed}")
    axes.legend(loc="upper right", fontsize=8)
    return figure


def surface_figure(landscape: Landscape, title: str) -> Figure:
    """3-D surface of the slice (log10 of the loss when the range is large)."""
    figure = new_figure((6.4, 5.6))
    axes = figure.add_subplot(projection="3d")
    log = _use_log(landscape.grid)
    values = np.log10(landscape.grid) if log else landscape.grid
    values = np.where(np.isfinite(values), values, np.nan)
    s, t = np.meshgrid(landscape.coords, landscape.coords, indexing="ij")  # grid[i, j] at (s, t)
    axes.plot_surface(s, t, values, cmap="viridis", linewidth=0, antialiased=True, alpha=0.9)
    centre = np.log10(landscape.center_loss) if log else landscape.center_loss
    axes.scatter([0], [0], [centre], color="red", s=40, depthshade=False, label="final weights")
    axes.legend(loc="upper left", fontsize=8)
    axes.set_xlabel("direction 1")
    axes.set_ylabel("direction 2")
    axes.set_zlabel("log10 loss" if log else "loss")
    axes.set_title(f"{title}\nloss surface around the final weights")
    return figure


def sharpness_figure(landscape: Landscape, title: str) -> Figure:
    """Loss at each ring point vs. angle; the gap between the two lines is the sharpness."""
    figure = new_figure((6.4, 4.0))
    axes = figure.add_subplot()
    degrees = np.degrees(landscape.ring_angles)
    axes.plot(degrees, landscape.ring_losses, "-o", markersize=4, label="loss on the ring")
    axes.axhline(landscape.center_loss, color="red", label=f"centre: {landscape.center_loss:.4g}")
    ring_mean = float(np.mean(landscape.ring_losses))
    axes.axhline(ring_mean, color="orange", linestyle="--", label=f"ring mean: {ring_mean:.4g}")
    axes.fill_between(degrees, landscape.center_loss, ring_mean, color="orange", alpha=0.15)
    axes.set_xlabel("angle in the (direction 1, direction 2) plane, degrees")
    axes.set_ylabel("loss")
    axes.set_title(f"{title}\nsharpness at relative radius {landscape.sharpness_radius:g}: "
                   f"{landscape.sharpness:+.4g}")
    axes.grid(alpha=GRID_ALPHA)
    axes.legend(fontsize=8)
    return figure


def figures(landscape: Landscape, title: str) -> dict[str, Figure]:
    """All landscape figures of one model, keyed by PNG file name."""
    return {
        "landscape_line.png": line_figure(landscape, title),
        "landscape_contour.png": contour_figure(landscape, title),
        "landscape_surface.png": surface_figure(landscape, title),
        "landscape_sharpness.png": sharpness_figure(landscape, title),
    }


def side_by_side(landscapes: dict[str, Landscape], title: str) -> Figure:
    """One contour panel per run on shared levels, plus all line profiles overlaid.

    Args:
        landscapes: label (e.g. the loss name) -> Landscape, in display order.
        title: figure title.
    """
    if not landscapes:
        raise ValueError("side_by_side needs at least one landscape")
    count = len(landscapes)
    figure = new_figure((3.6 * (count + 1), 4.0))
    panels = figure.subplots(1, count + 1, squeeze=False)[0]
    every = np.concatenate([np.ravel(item.grid) for item in landscapes.values()])
    log = _use_log(every)
    levels = _levels(every, log)
    norm = LogNorm(levels[0], levels[-1]) if log else None
    for axes, (label, item) in zip(panels[:-1], landscapes.items(), strict=False):
        filled = axes.contourf(item.coords, item.coords, np.ma.masked_invalid(item.grid.T),
                               levels=levels, norm=norm, cmap="viridis", extend="both")
        axes.plot([0], [0], "*", color="red", markersize=10)
        axes.set_aspect("equal")
        axes.set_title(f"{label}\nsharpness {item.sharpness:+.3g} (r={item.sharpness_radius:g})",
                       fontsize=9)
        axes.set_xlabel("direction 1")
    panels[0].set_ylabel("direction 2")
    _colorbar(figure, filled, panels[:-1].tolist(), levels, log)
    lines = panels[-1]
    for label, item in landscapes.items():
        lines.plot(item.alphas, item.profile, label=label)
    lines.axvline(0, color="gray", linestyle="--", linewidth=1)
    lines.axvline(1, color="gray", linestyle="--", linewidth=1)
    if _use_log(np.concatenate([item.profile for item in landscapes.values()])):
        lines.set_yscale("log")
    lines.set_xlabel("α (0 = initial, 1 = final)")
    lines.set_title("initial → final line", fontsize=9)
    lines.legend(fontsize=8)
    figure.suptitle(title)
    return figure


def spectral_density_figure(grid: np.ndarray, density: np.ndarray, title: str, *,
                            subtitle: str = "", top: float | None = None) -> Figure:
    """Eigenvalue density of the Hessian from stochastic Lanczos quadrature (PyHessian's plot).

    Args:
        grid, density: the smoothed density on its grid (``hessian.density_on_grid``).
        title: first line of the title; subtitle: how it was computed (probes × steps).
        top: the top eigenvalue from ``eigsh``, marked when given.
    Log y-axis: the bulk near 0 holds almost all of the mass.
    """
    figure = new_figure((6.4, 4.0))
    axes = figure.add_subplot()
    curve = np.asarray(density)
    axes.semilogy(grid, np.maximum(curve, 1e-12), color="tab:blue")
    if top is not None:
        axes.axvline(top, color="tab:red", linestyle="--", linewidth=1,
                     label=f"top eigenvalue (Lanczos): {top:.4g}")
        axes.legend(fontsize=8)
    axes.set_ylim(bottom=max(1e-8, curve.max() * 1e-8))
    axes.set_xlabel("eigenvalue of the Hessian")
    axes.set_ylabel("density (log scale)")
    axes.set_title(f"{title}\nHessian eigenvalue density (stochastic Lanczos quadrature"
                   f"{', ' + subtitle if subtitle else ''})")
    axes.grid(alpha=GRID_ALPHA)
    return figure


def per_class_curvature_figure(counts: np.ndarray, top: np.ndarray, minimum: np.ndarray,
                               names: list[str], title: str) -> Figure:
    """Top and most negative Hessian eigenvalue of each class's loss, classes ordered from the
    most to the least trained images (head → tail; Rangwani et al. 2022: tail classes sit at
    saddles, with large negative eigenvalues)."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    figure = new_figure((max(6.4, 0.5 * len(order) + 2), 4.4))
    axes = figure.add_subplot()
    positions = np.arange(len(order))
    axes.bar(positions - 0.2, np.asarray(top)[order], 0.4, color="tab:red",
             label="top eigenvalue λ_max")
    axes.bar(positions + 0.2, np.asarray(minimum)[order], 0.4, color="tab:blue",
             label="most negative eigenvalue λ_min")
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(positions, [f"{names[i]}\n{counts[i]}" for i in order], fontsize=8)
    axes.set_xlabel("class / training images (head → tail)")
    axes.set_ylabel("eigenvalue of the class's loss Hessian")
    axes.set_yscale("symlog", linthresh=max(1e-3, float(np.nanmax(np.abs(minimum))) / 100))
    axes.set_title(f"{title}\ncurvature per class")
    axes.grid(alpha=GRID_ALPHA, axis="y")
    axes.legend(fontsize=8)
    return figure
