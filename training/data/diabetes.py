"""``diabetes``: scikit-learn's bundled diabetes data (Efron et al. 2004), no network.

442 patients, 10 baseline variables as recorded (age in years, sex 1/2, BMI, blood pressure
and six serum measurements; `load_diabetes(scaled=False)`), and the target: a measure of
disease progression one year later (25 to 346). The default regression dataset.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_diabetes as sk_diabetes

from training.data.tabular import Table


def load_diabetes() -> Table:
    bunch = sk_diabetes(scaled=False)
    x = np.asarray(bunch.data, np.float64)
    columns = {str(n): x[:, i] for i, n in enumerate(bunch.feature_names)}
    rows = tuple(f"row {i}" for i in range(1, len(x) + 1))
    return Table("diabetes", columns, np.asarray(bunch.target, np.float64), None, rows,
                 "progression")
