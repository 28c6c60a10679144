"""`make bench`'s regression loss benchmark runs as written at its smoke size (`--quick`) and
fills one row per loss; what it measures is reported in the notes, not asserted here."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO_ROOT


@pytest.mark.slow
def test_regression_benchmark_fills_its_table():
    out = subprocess.run([sys.executable, "-m", "benchmarks.regression_losses", "--quick"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in out.stdout.splitlines() if line.startswith("| ")]
    rows = [r for r in rows if r[0] != "case"]
    assert [r[0].split()[0].rstrip(",") for r in rows] == [
        "mse", "mae", "huber", "log_cosh", "pinball", "pinball", "gaussian_nll"]
    assert rows[0][1] == "keras MeanSquaredError" and rows[4][1] == "keras.ops one-liner"
    assert rows[5][1] == "pinball, crossing=0"
    for row in rows:
        assert all(float(cell) > 0 for cell in row[2:8]), row
