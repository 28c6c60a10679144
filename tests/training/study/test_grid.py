"""The compare's grid without training: cells as enqueued Optuna trials on a journal file, the
claim that gives each cell to one worker (duplicates from two launchers included), freed
cells of dead workers, and each local worker's environment (GPU or share of the cores)."""

from __future__ import annotations

import multiprocessing

import optuna
import pytest
from optuna.trial import TrialState

from training.config import Config, ConfigError
from training.study import grid, grid_settings
from training.study.compare import fingerprint
from training.study.compare import main as compare_main
from training.study.compare_parse import parse_settings
from training.study.compare_settings import child_configs
from training.study.grid_worker import cell_list
from training.study.tune.storage import WORKER_ATTR


def _cells(n: int) -> list[grid.Cell]:
    return [grid.Cell("digits", "ce", seed, Config(seed=seed)) for seed in range(n)]


def test_every_cell_is_claimed_once_and_duplicates_give_way(tmp_path):
    study, created = grid.open_grid("g", str(tmp_path / "optuna.journal"))
    assert created
    cells = _cells(3)
    assert grid.enqueue_missing(study, cells) == cells
    # A second launcher that raced the first enqueued the same cells again.
    for cell in cells:
        study.enqueue_trial({}, user_attrs={grid.CELL_ATTR: cell.key})
    assert grid.enqueue_missing(study, cells) == []  # every cell has an owner now
    claimed = []
    while (got := grid.claim(study)) is not None:
        trial, key = got
        claimed.append(key)
        study.tell(trial, 0.0)
    assert sorted(claimed) == sorted(c.key for c in cells)  # once each
    by_state = [t.state for t in study.trials]
    assert by_state.count(TrialState.COMPLETE) == 3 and by_state.count(TrialState.FAIL) == 3
    dupes = [t for t in study.trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs["losslab_duplicate_of"] < t.number for t in dupes)
    assert grid.states(study, cells)["done"] == cells


def test_a_failed_cell_is_enqueued_again_and_its_old_trial_stays_failed(tmp_path):
    study, _ = grid.open_grid("g", str(tmp_path / "optuna.journal"))
    cells = _cells(2)
    grid.enqueue_missing(study, cells)
    trial, key = grid.claim(study)
    study.tell(trial, state=TrialState.FAIL)
    other, _ = grid.claim(study)
    study.tell(other, 0.0)
    assert [c.key for c in grid.states(study, cells)["failed"]] == [key]
    assert grid.reap(study, cells) == []  # an error is not retried within the same run
    assert [c.key for c in grid.enqueue_missing(study, cells)] == [key]  # a rerun
    again, again_key = grid.claim(study)
    assert again_key == key and again.number == 2
    assert study.trials[0].state == TrialState.FAIL


def test_a_dead_workers_cell_is_freed(tmp_path):
    study, _ = grid.open_grid("g", str(tmp_path / "optuna.journal"))
    cells = _cells(1)
    grid.enqueue_missing(study, cells)
    trial, _ = grid.claim(study)
    dead = multiprocessing.get_context("spawn").Process(target=int)
    dead.start()
    dead.join()  # a process id that no longer exists
    trial.set_user_attr(WORKER_ATTR, f"{grid.worker_id().rpartition(':')[0]}:{dead.pid}")
    assert grid.claim(study) is None  # nothing WAITING: the cell is RUNNING
    assert [c.key for c in grid.reap(study, cells)] == [cells[0].key]
    assert study.trials[0].state == TrialState.FAIL
    assert grid.claim(study)[1] == cells[0].key


def test_the_grid_of_the_same_settings_is_the_same_study():
    a = grid.study_name({"losses": "ce,focal", "seeds": 2})
    assert a == grid.study_name({"seeds": 2, "losses": "ce,focal"})
    assert a != grid.study_name({"losses": "ce,focal", "seeds": 3})
    assert a.startswith("compare-grid-") and len(a) == len("compare-grid-") + 12


@pytest.mark.parametrize(("raw", "needle"), [
    ("0", "workers='0' is not valid; valid: an integer >= 1, or gpus"),
    ("two", "workers='two' is not valid"),
])
def test_bad_workers_are_refused(raw, needle):
    with pytest.raises(ConfigError, match=needle):
        grid_settings.parse_workers(raw)


def test_workers_gpus_needs_a_gpu_and_gives_each_worker_one():
    with pytest.raises(ConfigError, match="workers=gpus found no GPU"):
        grid_settings.worker_envs("gpus", {"CUDA_VISIBLE_DEVICES": ""})
    envs = grid_settings.worker_envs("gpus", {"CUDA_VISIBLE_DEVICES": "2,5"})
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["2", "5"]
    assert [e["TF_NUM_INTRAOP_THREADS"] for e in envs] == ["1", "1"]


def test_cpu_workers_share_the_cores():
    envs = grid_settings.worker_envs("2", {}, cores=5)
    # The intra-op pool sets the numbers: the same for every worker; inter-op: the share.
    assert [e["TF_NUM_INTRAOP_THREADS"] for e in envs] == ["1", "1"]
    assert [e["TF_NUM_INTEROP_THREADS"] for e in envs] == ["3", "2"]
    assert [e[grid_settings.WORKER_ENV] for e in envs] == ["0", "1"]
    assert [grid_settings.cpu_share(i, 3, cores=2) for i in range(3)] == [1, 1, 1]


def test_two_launchers_enqueueing_together_run_each_cell_once(tmp_path):
    """Each launcher enqueues the cells it found without an owner; done at the same moment,
    every cell is enqueued twice, and the claims still give each to one worker."""
    location = str(tmp_path / "optuna.journal")
    cells = _cells(4)
    studies = [grid.open_grid("g", location)[0] for _ in range(2)]
    for study in studies:  # both looked before either enqueued
        for cell in cells:
            study.enqueue_trial({}, user_attrs={grid.CELL_ATTR: cell.key})
    claimed: list[str] = []
    while True:  # the two workers alternate
        got = [grid.claim(s) for s in studies]
        for study, one in zip(studies, got, strict=True):
            if one is not None:
                claimed.append(one[1])
                study.tell(one[0], 0.0)
        if got == [None, None]:
            break
    assert sorted(claimed) == sorted(c.key for c in cells)
    assert optuna.load_study(study_name="g", storage=grid.open_storage(location)).trials


def test_resume_takes_only_workers_and_datasets_keep_their_own_defaults():
    resumed = parse_settings(["resume=0123abc", "workers=2"])
    assert (resumed.resume, resumed.workers, resumed.argv) == ("0123abc", "2", ())
    with pytest.raises(ConfigError, match="only workers= may be given with it"):
        parse_settings(["resume=0123abc", "seeds=2"])
    with pytest.raises(ConfigError, match="dataset= and datasets= do not combine"):
        parse_settings(["dataset=digits", "datasets=digits"])
    settings = parse_settings(["datasets=digits,idx:../shared/datasets/mnist-t10k",
                               "losses=ce,triplet", "seeds=2"])
    cells = cell_list(settings, child_configs)
    assert len(cells) == 2 * 2 * 2  # datasets × variants × seeds, one grid
    by_key = {c.key: c.config for c in cells}
    assert by_key["digits|ce|0"].imbalance == 10.0  # each dataset's long-tail default
    assert by_key["idx:../shared/datasets/mnist-t10k|ce|1"].imbalance == 100.0
    assert by_key["idx:../shared/datasets/mnist-t10k|triplet|0"].imbalance == 1.0
    assert by_key["digits|ce|0"].run_name == "digits-ce-seed0"
    assert {c.experiment for c in by_key.values()} == {"compare-digits+idx-mnist-t10k"}
    one = parse_settings(["losses=ce,triplet", "seeds=2"])
    assert grid.study_name(fingerprint(settings)) != grid.study_name(fingerprint(one))
    assert fingerprint(one) == fingerprint(parse_settings(["losses=ce,triplet", "seeds=2",
                                                           "workers=3"]))


def test_bad_workers_exit_2_before_anything_starts(capsys):
    assert compare_main(["losses=ce", "workers=0"]) == 2
    assert "workers='0' is not valid; valid: an integer >= 1, or gpus" in capsys.readouterr().err
