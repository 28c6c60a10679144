"""Loss functions for Keras 3 on any backend, each as a pure `keras.ops` function and a
serializable `Loss` class, described once in the registry (`losses.get`, `losses.spec`).

Importing this package registers the classes with Keras (package "losses"), so models
compiled with them reload through `keras.saving.load_model` without `custom_objects`.
"""

from .balanced import BalancedCrossentropy, balanced_crossentropy, weights_from_labels
from .contrastive import ContrastiveLoss, contrastive_loss
from .crossentropy import Crossentropy
from .distances import pairwise_distances
from .focal import FocalLoss, focal_loss
from .registry import get, names, register, spec, specs
from .spec import Arg, LossArgError, LossSpec
from .triplet import TripletLoss, triplet_loss

__all__ = [
    "Arg",
    "LossArgError",
    "LossSpec",
    "BalancedCrossentropy",
    "ContrastiveLoss",
    "Crossentropy",
    "FocalLoss",
    "TripletLoss",
    "balanced_crossentropy",
    "contrastive_loss",
    "focal_loss",
    "get",
    "names",
    "pairwise_distances",
    "register",
    "spec",
    "specs",
    "triplet_loss",
    "weights_from_labels",
]
