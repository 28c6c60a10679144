"""SIGTERM to a tune worker as its trial starts fitting (where a worker once hung 60 s, its
traceback in `_pywrap_utils.Flatten`): it exits 143 within seconds, and its message says
how a trial continues (the same `make tune`, not `make train RESUME=`).
`sigterm_timing.py` times 10 tries of a run and of a worker."""

from __future__ import annotations

import re

import pytest
from sigterm_timing import sigterm

from training.cli import HARD_EXIT_S


@pytest.mark.slow
def test_a_tune_worker_stopped_as_its_trial_starts_says_to_rerun_make_tune(tmp_path):
    code, seconds, output = sigterm("tune", tmp_path, delay=0.0)
    assert code == 143, output[-3000:]
    assert seconds < HARD_EXIT_S, output[-3000:]  # not the hard exit: the run was closed
    line = output.strip().splitlines()[-1]
    assert re.fullmatch(r"terminated \(SIGTERM\): run [0-9a-f]{32} closed as KILLED; trial 0 "
                        r"will be redone: rerun the same make tune command to continue the "
                        r"study", line), line
    assert "RESUME" not in output
