"""Evaluation metrics: leave-one-out retrieval (`retrieval`), calibration and classification
scores (`classification`), and the long-tail views of a classifier (`long_tail`)."""

from training.metrics.classification import (
    calibration_bins,
    classification_metrics,
    expected_calibration_error,
)
from training.metrics.retrieval import retrieval_metrics

__all__ = [
    "calibration_bins",
    "classification_metrics",
    "expected_calibration_error",
    "retrieval_metrics",
]
