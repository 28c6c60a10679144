"""The landscape figures, drawn in `training.plots.landscape` (one plotting package for runs,
compare reports and landscapes); imported here by `training.landscape` and its tracking."""

from training.plots.landscape import (
    contour_figure,
    figures,
    line_figure,
    sharpness_figure,
    side_by_side,
    surface_figure,
)

__all__ = [
    "contour_figure",
    "figures",
    "line_figure",
    "sharpness_figure",
    "side_by_side",
    "surface_figure",
]
