"""A loss, a task and a metric are each described once.

Losses: walks every Python module of the project (not the tests) and fails on any list, tuple,
set or dict literal that holds two or more registered loss names, or two or more valid values
of one loss argument (e.g. the triplet `mining` choices). Those belong in `losses/catalog.py`.

Metrics (`training/metric_catalog.py`): no other module declares a constant (module or class
level) listing two or more metric names, nor a direction (`higher_is_better=True`, a
MINIMIZED/MAXIMIZED list, Optuna's "minimize"/"maximize" words other than compared with,
Keras's `mode="min"`); and every score the
evaluators log is in the catalogue. A function's own dict of computed scores
(`{"accuracy": float(...), ...}`) is the computing function, not a declaration.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import keras
import numpy as np
import pytest

import losses
from training import metric_catalog
from training.metrics.regression import regression_metrics
from training.metrics.regression_intervals import head_metrics
from training.run import evaluate

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("losses", "models", "training", "benchmarks")
ALLOWED = {ROOT / "losses" / "catalog.py"}
METRIC_HOME = ROOT / "training" / "metric_catalog.py"
DIRECTION_NAME = re.compile(r"MINIMI[SZ]ED|MAXIMI[SZ]ED|(HIGHER|LOWER)_IS_BETTER")
DIRECTION_WORDS = {"minimize", "maximize"}


def _modules(allowed=ALLOWED):
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path not in allowed:
                yield path


def _vocabularies() -> list[tuple[str, set[str]]]:
    vocab = [("loss names", set(losses.names()))]
    for spec in losses.specs():
        for arg in spec.args:
            if len(arg.choices) >= 2:
                vocab.append((f"{spec.name}.{arg.name} choices", set(map(str, arg.choices))))
    return vocab


def _strings(node) -> list[str]:
    items = node.keys if isinstance(node, ast.Dict) else node.elts
    return [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]


def offending_literals(source: str, vocabularies) -> list[tuple[int, str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
            strings = _strings(node)
            for what, words in vocabularies:
                hits = sorted({s for s in strings if s in words})
                if len(hits) >= 2:
                    found.append((node.lineno, what, hits))
    return found


def test_the_checker_finds_a_second_list():
    vocab = _vocabularies()
    assert offending_literals('TASKS = {"ce": "classification", "focal": "classification"}', vocab)
    assert offending_literals('MINING = ("semi-hard", "hard", "all")', vocab)
    assert not offending_literals('x = ("ce", "train/loss")', vocab)


@pytest.mark.parametrize("path", list(_modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_but_the_catalogue_lists_losses_or_their_choices(path):
    found = offending_literals(path.read_text(), _vocabularies())
    assert not found, [f"{path.relative_to(ROOT)}:{line}: {what} {hits}" for line, what, hits in found]


# --- metrics --------------------------------------------------------------------------------


def _metric_names() -> set[str]:
    names = set()
    for spec in metric_catalog.metrics():
        if not spec.key.endswith("*"):  # a family (pinball_q*) has no literal name
            names.add(spec.key)
            names.update(spec.names())
    return names


def _declared_constants(tree):
    """Values assigned at module or class level (what a module declares, not what a function
    computes)."""
    bodies = [tree.body] + [n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    for body in bodies:
        for statement in body:
            if isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value is not None:
                yield statement.value


def metric_declarations(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, what) of every metric list or direction declared in `source`."""
    tree = ast.parse(source)
    found = []
    for value in _declared_constants(tree):
        for node in ast.walk(value):
            if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
                items = [*node.keys, *node.values] if isinstance(node, ast.Dict) else node.elts
                hits = sorted({i.value for i in items if isinstance(i, ast.Constant)
                               and isinstance(i.value, str) and i.value in names})
                if len(hits) >= 2:
                    found.append((node.lineno, f"metric names {hits}"))
    # `direction(name) == "minimize"` reads the catalogue's answer; it declares nothing.
    compared = {id(operand) for node in ast.walk(tree) if isinstance(node, ast.Compare)
                for operand in (node.left, *node.comparators)}
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "higher_is_better" and isinstance(
                node.value, ast.Constant):
            found.append((node.lineno, f"higher_is_better={node.value.value}"))
        elif isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Store) and \
                DIRECTION_NAME.search(name := getattr(node, "id", None) or node.attr):
            found.append((node.lineno, f"a direction list {name}"))
        elif isinstance(node, ast.keyword) and node.arg == "mode" and isinstance(
                node.value, ast.Constant) and node.value.value in ("min", "max"):
            found.append((node.lineno, f"a Keras direction mode={node.value.value!r}"))
        elif isinstance(node, ast.Constant) and node.value in DIRECTION_WORDS and \
                id(node) not in compared:
            found.append((node.lineno, f"the direction word {node.value!r}"))
    return found


def test_the_metric_checker_finds_a_second_declaration():
    names = _metric_names()
    assert metric_declarations('CURVES = ("val/loss", "val/ece")', names)
    assert metric_declarations('class A:\n    M = {"rmse": "RMSE", "mae": "MAE"}', names)
    assert metric_declarations('Metric("test/ece", "ECE", higher_is_better=False)', names)
    assert metric_declarations('MINIMIZED = ("x",)', names)
    assert metric_declarations('def d(m):\n    return "minimize" if m else "maximize"', names)
    assert not metric_declarations(  # a computing function's own result
        'def f(p):\n    return {"accuracy": p.mean(), "balanced_accuracy": p.min()}', names)
    assert not metric_declarations('KEY = "val/ece"', names)
    assert metric_declarations('EarlyStopping(monitor="val_ece", mode="min")', names)
    assert not metric_declarations('mode = "min" if direction(m) == "minimize" else "max"',
                                   names)


@pytest.mark.parametrize("path", list(_modules({*ALLOWED, METRIC_HOME})),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_but_the_metric_catalogue_lists_metrics_or_directions(path):
    found = metric_declarations(path.read_text(), _metric_names())
    assert not found, [f"{path.relative_to(ROOT)}:{line}: {what} (read it from "
                       "training/metric_catalog.py)" for line, what in found]


def _tiny_split(seed: int = 0):
    """12 rows of 4 features, classes 0, 1, 2 four times each."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(12, 4)).astype("float32"), np.repeat(np.arange(3), 4)


def test_every_score_the_classifier_logs_is_catalogued():
    x, y = _tiny_split()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # Counts in all three shot groups (> 100, 20..100, < 20), so every group's key appears.
    scores, _, _ = evaluate.classification_scores(model, loss_fn, x, y, 3,
                                                  np.array([150, 50, 10]), tau_from=(x, y))
    assert {"balanced_accuracy_tau_norm", "few_shot_accuracy", "loss"} <= set(scores)
    for split in ("val", "test", "val/stage2", "test/stage2"):  # as the trainer logs them
        missing = [k for k in scores if metric_catalog.find(f"{split}/{k}") is None]
        assert not missing, f"{split}: {missing} are not in training/metric_catalog.py"


def test_every_score_the_retrieval_evaluation_logs_is_catalogued():
    x, y = _tiny_split(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    scores, _ = evaluate.retrieval_scores(model, x, y)
    assert len(scores) == 4
    for split in ("val", "test"):
        missing = [k for k in scores if metric_catalog.find(f"{split}/{k}") is None]
        assert not missing, f"{split}: {missing} are not in training/metric_catalog.py"


def test_every_score_a_regression_run_logs_is_catalogued():
    # regression_scores = regression_metrics + head_metrics of the loss's output + "loss"
    # (training/run/regression.py); each head kind once: a point, quantiles, a Gaussian.
    y = np.random.default_rng(2).normal(size=20)
    scores = {"loss": 0.0, **regression_metrics(y + 0.1, y)}
    scores.update(head_metrics(np.stack([y - 1, y, y + 1], 1), y, None, "quantiles",
                               {"quantiles": (0.1, 0.5, 0.9)}))
    scores.update(head_metrics(np.stack([y, np.zeros(20)], 1), y, None, "mean_logvar", {}))
    assert {"rmse", "pinball_q10", "interval_coverage", "nll", "coverage_90"} <= set(scores)
    for split in ("val", "test"):
        missing = [k for k in scores if metric_catalog.find(f"{split}/{k}") is None]
        assert not missing, f"{split}: {missing} are not in training/metric_catalog.py"
