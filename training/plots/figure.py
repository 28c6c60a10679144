"""`new_figure`: the one place that sets a figure's size unit, resolution, layout and canvas."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
GRID_ALPHA = 0.3


def new_figure(size: tuple[float, float] = (6.4, 4.8)) -> Figure:
    """An empty Figure of ``size`` inches with constrained layout on an Agg canvas.

    Built without pyplot, the figure is in no global registry: nothing needs closing, and
    the garbage collector frees it like any object. The Agg canvas is attached so that
    ``savefig`` and ``mlflow.log_figure`` render it without a display or a backend switch.
    """
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure
