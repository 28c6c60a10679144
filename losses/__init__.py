"""Loss functions for Keras 3 on any backend: balanced cross entropy, focal, triplet and
contrastive losses, each as a pure `keras.ops` function and a serializable `Loss` class.

Importing this package registers the classes with Keras (package "losses"), so models
compiled with them reload through `keras.saving.load_model` without `custom_objects`.
"""

from .balanced import BalancedCrossentropy, balanced_crossentropy, weights_from_labels
from .contrastive import ContrastiveLoss, contrastive_loss
from .crossentropy import Crossentropy
from .distances import pairwise_distances
from .focal import FocalLoss, focal_loss
from .registry import get, names
from .triplet import TripletLoss, triplet_loss

__all__ = [
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
    "triplet_loss",
    "weights_from_labels",
]
