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
from .gaussian_nll import GaussianNLLLoss, gaussian_nll_loss
from .huber import HuberLoss, huber_loss
from .ldam import LDAMLoss, drw_weights, ldam_loss, ldam_margins
from .log_cosh import LogCoshLoss, log_cosh_loss
from .logit_adjusted import LogitAdjustedCrossentropy, logit_adjusted_crossentropy
from .mae import MAELoss, mae_loss
from .mse import MSELoss, mse_loss
from .multi_similarity import MultiSimilarityLoss, multi_similarity_loss
from .pinball import PinballLoss, pinball_loss
from .poly import PolyLoss, poly_loss
from .proxy_anchor import ProxyAnchorLoss, proxy_anchor_loss
from .proxy_head import ProxyHead
from .registry import get, names, register, spec, specs
from .spec import Arg, LossArgError, LossSpec, output_units
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
    "GaussianNLLLoss",
    "HuberLoss",
    "LDAMLoss",
    "LogCoshLoss",
    "LogitAdjustedCrossentropy",
    "MAELoss",
    "MSELoss",
    "MultiSimilarityLoss",
    "PinballLoss",
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
    "gaussian_nll_loss",
    "get",
    "huber_loss",
    "ldam_loss",
    "ldam_margins",
    "log_cosh_loss",
    "logit_adjusted_crossentropy",
    "mae_loss",
    "mse_loss",
    "multi_similarity_loss",
    "names",
    "output_units",
    "pairwise_distances",
    "pinball_loss",
    "poly_loss",
    "proxy_anchor_loss",
    "register",
    "spec",
    "specs",
    "supcon_loss",
    "triplet_loss",
    "weights_from_labels",
]
