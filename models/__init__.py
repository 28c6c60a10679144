"""Models for losslab: one conv trunk, a classifier head and an embedding head."""

from models.export import inference_model
from models.heads import HEADS, embedding_net, small_cnn, with_proxies
from models.trunk import conv_trunk

__all__ = ["HEADS", "conv_trunk", "embedding_net", "inference_model", "small_cnn", "with_proxies"]
