"""`make bench`'s backbone benchmark runs as written at a smoke size (one epoch each of
resnet20 on 256 images): its table is filled. What it measures is in the README."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO_ROOT


@pytest.mark.slow
def test_backbone_benchmark_fills_its_table():
    out = subprocess.run([sys.executable, "-m", "benchmarks.backbones", "--quick"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in out.stdout.splitlines() if line.startswith("| ")][1:]
    assert [r[0].split(",")[0] for r in rows] == [
        "bare `model.fit`", "template fit", "template epoch incl. validation"]
    assert all(float(r[2].replace(",", "")) > 0 for r in rows)  # examples / s
