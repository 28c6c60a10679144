"""Losses by name: `losses.get("focal", gamma=1.0)`; configs select code from this dict."""

from .balanced import BalancedCrossentropy
from .contrastive import ContrastiveLoss
from .crossentropy import Crossentropy
from .focal import FocalLoss
from .triplet import TripletLoss

REGISTRY = {
    "ce": Crossentropy,
    "balanced_ce": BalancedCrossentropy,
    "focal": FocalLoss,
    "triplet": TripletLoss,
    "contrastive": ContrastiveLoss,
}


def names():
    """Sorted list of the names `get` accepts."""
    return sorted(REGISTRY)


def get(name, **kwargs):
    """A new loss instance by registry name, keyword arguments passed to its constructor.

    Raises:
        ValueError: unknown name (the message lists the known ones), or an invalid argument.
    """
    if name not in REGISTRY:
        raise ValueError(f"Unknown loss {name!r}. Known losses: {', '.join(names())}.")
    return REGISTRY[name](**kwargs)
