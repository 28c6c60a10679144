"""Models for losslab: one conv trunk, a classifier head and an embedding head."""

from models.heads import embedding_net, small_cnn
from models.trunk import conv_trunk

__all__ = ["conv_trunk", "embedding_net", "small_cnn"]
