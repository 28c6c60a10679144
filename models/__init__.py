"""Models for losslab: backbones by name (`models/catalog.py`, `registry.build`), the heads a
loss takes, and the inference model a run logs."""

from models.export import inference_model
from models.heads import (
    HEADS,
    classifier,
    embedder,
    embedding_net,
    regressor,
    small_cnn,
    with_proxies,
)
from models.registry import (
    ModelError,
    all_layers,
    backbone,
    backbone_of,
    build,
    freeze_batchnorm,
    head_variables,
)
from models.trunk import conv_trunk

__all__ = [
    "HEADS", "ModelError", "all_layers", "backbone", "backbone_of", "build", "classifier", "conv_trunk",
    "embedder", "embedding_net", "freeze_batchnorm", "head_variables", "inference_model",
    "regressor",
    "small_cnn", "with_proxies",
]
