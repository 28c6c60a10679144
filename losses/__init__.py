"""Loss functions for Keras 3 on any backend, each as a pure `keras.ops` function and a
serializable `Loss` class, described once in the registry (`losses.get`, `losses.spec`).

Importing this package registers the classes with Keras (package "losses"), so models
compiled with them reload through `keras.saving.load_model` without `custom_objects`.
"""

from .arcface import ArcFaceLoss, arcface_loss
from .balanced import BalancedCrossentropy, balanced_crossentropy, weights_from_labels
from .circle import CircleLoss, circle_loss
from .contrastive import ContrastiveLoss, contrastive_loss
from .cosface import CosFaceLoss, cosface_loss
from .crossentropy import Crossentropy
from .distances import pairwise_distances
from .focal import FocalLoss, focal_loss
from .ldam import LDAMLoss, drw_weights, ldam_loss, ldam_margins
from .logit_adjusted import LogitAdjustedCrossentropy, logit_adjusted_crossentropy
from .multi_similarity import MultiSimilarityLoss, multi_similarity_loss
from .poly import PolyLoss, poly_loss
from .proxy_anchor import ProxyAnchorLoss, proxy_anchor_loss
from .proxy_head import ProxyHead
from .registry import get, names, register, spec, specs
from .spec import Arg, LossArgError, LossSpec
from .supcon import SupConLoss, supcon_loss
from .triplet import TripletLoss, triplet_loss

__all__ = [
    "Arg",
    "LossArgError",
    "LossSpec",
    "ArcFaceLoss",
    "BalancedCrossentropy",
    "CircleLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "Crossentropy",
    "FocalLoss",
    "LDAMLoss",
    "LogitAdjustedCrossentropy",
    "MultiSimilarityLoss",
    "PolyLoss",
    "ProxyAnchorLoss",
    "ProxyHead",
    "SupConLoss",
    "TripletLoss",
    "arcface_loss",
    "balanced_crossentropy",
    "circle_loss",
    "contrastive_loss",
    "cosface_loss",
    "drw_weights",
    "focal_loss",
    "get",
    "ldam_loss",
    "ldam_margins",
    "logit_adjusted_crossentropy",
    "multi_similarity_loss",
    "names",
    "pairwise_distances",
    "poly_loss",
    "proxy_anchor_loss",
    "register",
    "spec",
    "specs",
    "supcon_loss",
    "triplet_loss",
    "weights_from_labels",
]
