"""`workers=N` without starting any: one GPU each round-robin, the same storage, and the
command each worker runs (the studies with real workers are in test_tune_study.py)."""

from __future__ import annotations

import pytest

from training.study import tune


@pytest.fixture(autouse=True)
def _no_storage_from_the_environment(monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_workers_get_one_gpu_each_round_robin_and_the_same_study():
    assert tune.visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}) == ["0", "1"]
    assert tune.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    envs = [tune.worker_env(i, ["0", "1"], "/j", {}) for i in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0"]
    assert all(e["OPTUNA_STORAGE"] == "/j" and e["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
               for e in envs)
    assert "CUDA_VISIBLE_DEVICES" not in tune.worker_env(0, [], "/j", {})
    argv = ["loss=focal", "trials=4", "workers=3", "study=old"]
    command = tune.worker_command(tune.parse_settings(argv))
    assert command[1:] == ["-m", "training.tune", "loss=focal", "trials=4", "workers=1",
                           "study=old"]
