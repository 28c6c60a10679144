"""The rest of `make bench` runs as written, at smoke sizes (seconds each): the loss, mining
and training benchmarks fill their tables. What they measure is reported in the notes, not
asserted here."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO_ROOT


def _bench(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _rows(stdout: str, start: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in stdout.splitlines() if line.startswith(start)]


@pytest.mark.slow
def test_loss_benchmark_fills_its_tables():
    stdout = _bench("benchmarks.losses", "--sizes", "64", "--quick")
    (triplet,) = _rows(stdout, "| 64 |")  # ours and the TFA-style reference at B = 64
    assert all(float(c) > 0 for c in triplet[1:7])
    assert _rows(stdout, "| focal γ=2")  # the classification table vs Keras


@pytest.mark.slow
def test_mining_benchmark_fills_its_table():
    stdout = _bench("benchmarks.mining", "--sizes", "64", "--calls", "1")
    rows = _rows(stdout, "| 64 |")
    assert [r[1] for r in rows] == ["eager", "tf.function", "floor"]
    assert rows[0][5] == rows[1][5]  # the same loss eagerly and traced


@pytest.mark.slow
def test_training_benchmark_fills_its_tables():
    stdout = _bench("benchmarks.train", "--quick", "--no-jit")
    assert "Epoch-end work:" in stdout
    assert [r[0] for r in _rows(stdout, "| 1,000 |") + _rows(stdout, "| 4,000 |")] == [
        "1,000", "4,000"]  # retrieval evaluation at both sizes


@pytest.mark.slow
def test_data_benchmark_fills_its_tables():
    stdout = _bench("benchmarks.data", "--quick")
    assert _rows(stdout, "| losslab folder: (cache=none)") and _rows(stdout, "| idx: |")
    rss = _rows(stdout, "| 400 |")
    assert len(rss) == 1 and float(rss[0][1]) > 0  # peak RSS of the larger set, in MB
