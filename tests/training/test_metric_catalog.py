"""The task and metric catalogue (training/metric_catalog.py): its facts, its lookups, its
errors, and that it loads without Keras."""

from __future__ import annotations

import subprocess
import sys

import pytest

from training import metric_catalog as mc
from training.config import SELECTION_METRIC
from training.errors import ConfigError
from training.loss_catalog import catalog


@pytest.mark.parametrize("name, direction", [
    ("val/balanced_accuracy", "maximize"), ("test/ece", "minimize"), ("val/loss", "minimize"),
    ("val/map_at_r", "maximize"), ("val/rmse", "minimize"), ("test/mae", "minimize"),
    ("val/median_ae", "minimize"), ("test/r2", "maximize"), ("val/nll", "minimize"),
    ("val/pinball_q10", "minimize"), ("time/wall_seconds", "minimize"),
])
def test_directions(name, direction):
    assert mc.direction(name) == direction


@pytest.mark.parametrize("name", ["coverage_90", "interval_coverage", "interval_width",
                                  "tau_norm_tau"])
def test_unranked_metrics_have_no_direction_and_are_no_objective(name):
    spec = mc.metric(name)
    assert not spec.ranked and not spec.objective and not spec.higher_is_better
    with pytest.raises(ConfigError, match="not rankable"):
        mc.direction(name)
    assert all(name not in mc.objectives(t) for t in mc.task_names())


def test_an_unranked_objective_is_refused_at_declaration():
    with pytest.raises(ValueError, match="unranked metric cannot be an objective"):
        mc.MetricSpec("x", "x", mc.UNRANKED, ("regression",), objective=True)
    with pytest.raises(ValueError, match="valid: higher, lower, none"):
        mc.MetricSpec("x", "x", "up", ("regression",))


def test_each_task_as_the_issue_states_it():
    assert mc.task_names() == ("classification", "retrieval", "regression")
    assert mc.selection_metrics() == {"classification": "val/balanced_accuracy",
                                      "retrieval": "val/map_at_r", "regression": "val/rmse"}
    assert SELECTION_METRIC == mc.selection_metrics()  # config's name is the catalogue's
    assert [m.key for t in mc.task_names() for m in mc.headline(t)] == \
        ["balanced_accuracy", "map_at_r", "rmse"]
    assert mc.task_defaults("classification") == {"batch_size": 64}
    assert mc.task_defaults("retrieval") == {"batch_size": 64, "samples_per_class": 16}
    assert mc.task_defaults("regression") == {"batch_size": 64}


@pytest.mark.parametrize("task", mc.task_names())
def test_selection_and_headline_metrics_are_ranked_objectives_and_columns(task):
    spec = mc.task(task)
    assert mc.objectives(task)[0] == spec.selection
    assert mc.metric(spec.selection_metric).objective
    for metric in mc.headline(task):
        assert metric.ranked and metric.column and task in metric.tasks
    for key in mc.objectives(task):
        assert mc.metric(key).ranked and "val" in mc.metric(key).splits
    for name in spec.curves + tuple(f"test/{k}" for k in spec.brief):
        assert mc.find(name) is not None, name


def test_task_defaults_are_a_fresh_copy():
    defaults = mc.task_defaults("retrieval")
    defaults["batch_size"] = 1
    assert mc.task_defaults("retrieval")["batch_size"] == 64
    with pytest.raises(TypeError):
        mc.task("retrieval").defaults["batch_size"] = 1  # read-only mapping


@pytest.mark.parametrize("name, key", [
    ("balanced_accuracy", "balanced_accuracy"), ("val/balanced_accuracy", "balanced_accuracy"),
    ("test/stage2/balanced_accuracy", "stage2/balanced_accuracy"),
    ("val/stage2/macro_f1", "macro_f1"), ("train/stage2/loss", "loss"),
    ("train/loss", "loss"), ("test/tail_recall", "tail_recall"),
    ("landscape/sharpness", "landscape/sharpness"), ("val/pinball_q2.5", "pinball_q*"),
])
def test_find_resolves_logged_names(name, key):
    assert mc.find(name).key == key


@pytest.mark.parametrize("name", ["val/tail_recall", "train/rmse", "test/time/wall_seconds",
                                  "val/pinball_q", "nonsense", "val/"])
def test_find_refuses_what_is_not_logged(name):
    assert mc.find(name) is None


def test_unknown_names_are_errors_naming_the_valid_choices():
    with pytest.raises(ConfigError, match=r"'val/nope' is not a known metric; known: .*map_at_r"):
        mc.metric("val/nope")
    with pytest.raises(ConfigError, match="task='ranking' is not a task; valid: classification, "
                                          "retrieval, regression"):
        mc.task_defaults("ranking")


def test_objectives_match_the_metrics_the_tuner_accepted_before():
    # The tuner's lists before the catalogue (training/study/tune/settings.py, round 2).
    assert set(mc.objectives("classification")) == {
        "balanced_accuracy", "accuracy", "macro_f1", "balanced_accuracy_posthoc",
        "many_shot_accuracy", "medium_shot_accuracy", "few_shot_accuracy", "ece", "loss",
        "balanced_accuracy_tau_norm"}  # added with issue 24's τ-norm metric
    assert set(mc.objectives("retrieval")) == {"map_at_r", "precision_at_1", "recall_at_5",
                                               "r_precision"}


def test_every_loss_task_is_a_catalogued_task():
    assert {s.task for s in catalog().specs()} <= set(mc.task_names())


def test_logged_names_by_split():
    assert mc.metric("ece").names() == ("val/ece", "test/ece")
    assert mc.metric("loss").names() == ("train/loss", "val/loss", "test/loss")
    assert mc.metric("time/wall_seconds").names() == ("time/wall_seconds",)
    assert [m.key for m in mc.free_fixes()] == ["balanced_accuracy_posthoc",
                                                "balanced_accuracy_tau_norm"]


def test_the_catalogue_loads_without_keras_or_tensorflow():
    code = ("import sys, training.metric_catalog; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
