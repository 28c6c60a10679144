"""`make bench`'s retrieval benchmark runs as written, at a size that takes seconds: every
implementation in its own process, the table filled, and TensorFlow's top_k scores equal to
ours on the same embeddings."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT


@pytest.mark.slow
def test_retrieval_benchmark_fills_its_tables():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.retrieval", "--sizes", "2000", "--classes", "10",
         "--repeats", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    row = next(line for line in out.stdout.splitlines() if line.startswith("| 2,000 | 10 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "199"  # R_max: 200 items per class
    ours, sklearn, ratio = float(cells[3]), float(cells[5]), float(cells[7])
    # ratio: of the unrounded medians; the two times are printed to 0.005 s
    assert ours > 0 and sklearn > 0 and ratio * sklearn == pytest.approx(ours, abs=0.006)
    tf_row = next(line for line in out.stdout.splitlines() if line.startswith("| 2,000 | 10 | ")
                  and line.count("|") == 7)
    assert float(re.split(r"\s*\|\s*", tf_row.strip("| "))[-1]) < 1e-9  # max |Δ score|
