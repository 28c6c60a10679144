"""Loss landscapes: the loss along the initial -> final line and on 2-D slices around the
final weights with filter-normalized random directions, plus a sharpness metric.

References: Goodfellow, Vinyals, Saxe, ICLR 2015 (arXiv:1412.6544); Li, Xu, Taylor, Studer,
Goldstein, NeurIPS 2018 (arXiv:1712.09913). CLI: ``python -m training.landscape run=<run_id>``.
"""

import training.quiet  # noqa: F401 (TensorFlow, imported quietly before Keras is)
from training.landscape.directions import filter_normalized_direction
from training.landscape.evaluate import LossOnData, line_profile, sharpness, surface
from training.landscape.from_run import landscape_for_config, landscape_of_run
from training.landscape.hessian import hessian_spectrum
from training.landscape.landscape import Landscape, compute_landscape
from training.landscape.tracking import log_landscape
from training.plots.landscape import figures, side_by_side

__all__ = [
    "Landscape",
    "LossOnData",
    "compute_landscape",
    "figures",
    "hessian_spectrum",
    "filter_normalized_direction",
    "landscape_for_config",
    "landscape_of_run",
    "line_profile",
    "log_landscape",
    "sharpness",
    "side_by_side",
    "surface",
]
