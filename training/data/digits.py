"""``digits``: scikit-learn's bundled 8×8 digits (1,797 images, values 0..16). No network."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits as sk_digits

from training.data.images import ArrayImages
from training.data.source import Source, check_labels


def load_digits() -> Source:
    """float32 (1797, 8, 8, 1) in [0, 1]; no test split (the caller holds one out)."""
    bunch = sk_digits()
    x = (np.asarray(bunch.images, np.float32) / np.float32(16.0))[..., None]  # counts 0..16
    names = tuple(str(n) for n in bunch.target_names)
    return Source(ArrayImages(x), check_labels(bunch.target, len(names), "digits"), None, None,
                  names)
