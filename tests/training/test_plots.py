"""Every figure of `training.plots` drawn on small synthetic data: a Figure with the expected
panels and artists (no pixel comparisons), and no pyplot anywhere on the way."""

from __future__ import annotations

import io
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from training import plots
from training.metrics import calibration_bins
from training.plots import landscape
from training.study.report import figures as report_figures

REPO_ROOT = Path(__file__).resolve().parents[2]


def _probs(n: int = 60, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, rng.integers(0, classes, size=n)


def _landscape(k: int = 5):
    """The fields of `training.landscape.Landscape`, whose package imports Keras."""
    s, t = np.meshgrid(np.linspace(-1, 1, k), np.linspace(-1, 1, k), indexing="ij")
    return types.SimpleNamespace(
        alphas=np.linspace(-0.25, 1.25, 7), profile=np.linspace(3, 0.1, 7),
        coords=np.linspace(-1, 1, k), grid=0.1 + s**2 + 2 * t**2, sharpness=0.5,
        center_loss=0.1, sharpness_radius=0.25, ring_angles=np.linspace(0, 5, 6),
        ring_losses=np.full(6, 0.6), seed=0)


def every_figure() -> dict[str, Figure]:
    """One of each figure the trainer, the compare report and a landscape log."""
    probs, labels = _probs()
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(30, 8))
    classes = rng.integers(0, 3, size=30)
    history = {"train/loss": [2.0, 1.0, 0.5], "val/loss": [2.1, 1.2, 0.9],
               "val/accuracy": [0.3, 0.5, 0.6], "val/ece": [0.2, 0.1, 0.1]}
    return {
        "loss_curves": plots.loss_curves(history, "t"),
        "confusion": plots.confusion_matrix(labels, probs.argmax(1), list("abcd")),
        "reliability": plots.reliability_diagram(probs, labels),
        "per_class_recall": plots.per_class_recall(np.array([0.9, 0.5, 0.2, 0.1]),
                                                   np.array([40, 20, 10, 5]), list("abcd")),
        "embeddings": plots.embedding_projection(embeddings, classes, ["x", "y", "z"]),
        "neighbours": plots.neighbour_grid(rng.random((30, 6, 6, 1)), embeddings, classes,
                                           queries=3, k=2),
        "report_curves": report_figures.curves(
            {"val/accuracy": {"ce": [np.array([0.1, 0.5]), np.array([0.3, 0.7])]}}, "t"),
        "report_recall": report_figures.per_class_recall(
            {"ce": rng.random((2, 4)), "focal": rng.random((3, 4))}, np.array([5, 50, 20, 1])),
        "report_reliability": report_figures.reliability({"ce": _probs(seed=2),
                                                          "focal": _probs(seed=3)}),
        **landscape.figures(_landscape(), "t"),
        "landscape_side_by_side": landscape.side_by_side({"ce": _landscape(),
                                                          "focal": _landscape()}, "t"),
        "critical_difference": report_figures.critical_difference(
            {"ce": 2.5, "focal": 1.5, "la": 2.0},
            pd.DataFrame(np.full((3, 3), 0.5), index=["ce", "focal", "la"],
                         columns=["ce", "focal", "la"]), cd=1.9, alpha=0.05, title="t"),
    }


def test_every_figure_is_a_figure_that_renders_to_png():
    drawn = every_figure()
    assert len(drawn) == 15
    for name, figure in drawn.items():
        assert isinstance(figure, Figure), name
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_neither_importing_nor_drawing_touches_pyplot():
    # A fresh interpreter: pytest, sklearn or another test may have imported pyplot here.
    script = (
        "import importlib.util, io, sys\n"
        "import training.plots, training.plots.landscape, training.metrics\n"
        "imported = 'matplotlib.pyplot' in sys.modules\n"
        "spec = importlib.util.spec_from_file_location('figure_test', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "for figure in module.every_figure().values():\n"
        "    figure.savefig(io.BytesIO(), format='png')\n"
        "pyplot = sys.modules.get('matplotlib.pyplot')\n"
        "print(imported, len(pyplot.get_fignums()) if pyplot else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, __file__], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # Importing our plots does not import pyplot, and drawing leaves no figure in pyplot's
    # global manager (scikit-posthocs, which the report's CD diagram uses, imports pyplot
    # itself; the diagram draws on our Axes).
    assert done.stdout.split() == ["False", "0"]
    figure_code = [*(REPO_ROOT / "training" / "plots").rglob("*.py"),
                   *(REPO_ROOT / "training" / "study" / "report").rglob("*.py")]
    ours = [p for p in figure_code if "import matplotlib.pyplot" in p.read_text()]
    assert not ours, ours


# --- one run ----------------------------------------------------------------------------------


def test_loss_curves_put_losses_left_and_other_val_metrics_right():
    history = {"train/loss": [2.0, 1.0], "val/loss": [2.5, 1.5], "val/accuracy": [0.4, 0.6],
               "val/macro_f1": [0.3, 0.5], "val/ece": [0.2, 0.1], "train/accuracy": [0.5, 0.7]}
    left, right = plots.loss_curves(history, "t").axes
    assert [line.get_label() for line in left.get_lines()] == ["train/loss", "val/loss"]
    assert [line.get_label() for line in right.get_lines()] == ["val/accuracy", "val/macro_f1"]
    assert left.get_lines()[0].get_xdata().tolist() == [1, 2]  # epochs are 1-based
    assert not left.collections  # one run: no min–max band


def test_confusion_matrix_rows_are_recall():
    figure = plots.confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b", "c"])
    (axes,) = figure.axes
    share = axes.get_images()[0].get_array()
    np.testing.assert_allclose(share, [[0.5, 0.5, 0], [0, 1, 0], [0, 0, 0]])  # c: absent
    assert len(axes.texts) == 9
    assert [t.get_text() for t in axes.get_xticklabels()] == ["a", "b", "c"]


def test_confusion_matrix_leaves_out_the_numbers_of_many_classes():
    labels = np.arange(25)
    figure = plots.confusion_matrix(labels, labels, [str(c) for c in labels])
    assert not figure.axes[0].texts


def test_reliability_diagram_draws_the_bins_of_calibration_bins():
    probs, labels = _probs(n=200)
    figure = plots.reliability_diagram(probs, labels, bins=10)
    (axes,) = figure.axes
    confidence, accuracy, count = calibration_bins(probs, labels, bins=10)
    filled = count > 0
    accuracy_bars, gap_bars = axes.containers
    assert [b.get_height() for b in accuracy_bars] == pytest.approx(accuracy[filled])
    assert [b.get_y() + b.get_height() for b in gap_bars] == pytest.approx(confidence[filled])
    assert len(axes.patches) == 2 * filled.sum() and len(axes.get_lines()) == 1
    assert axes.get_title().startswith("test: ECE ")


def test_per_class_recall_of_one_run_has_one_bar_per_class_and_no_whiskers():
    figure = plots.per_class_recall(np.array([0.2, 0.9, 0.5]), np.array([5, 50, 20]),
                                    ["cat", "dog", "eel"])
    (axes,) = figure.axes
    assert [b.get_height() for b in axes.patches] == pytest.approx([0.9, 0.5, 0.2])
    assert [t.get_text() for t in axes.get_xticklabels()] == ["dog\n(n=50)", "eel\n(n=20)",
                                                               "cat\n(n=5)"]
    assert not axes.lines and axes.get_legend() is None


def test_embedding_projection_has_one_scatter_per_class():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 10)
    figure = plots.embedding_projection(rng.normal(size=(30, 5)), labels, ["a", "b", "c"])
    assert len(figure.axes[0].collections) == 3


def test_neighbour_grid_has_a_row_per_query_and_a_column_per_neighbour():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 6)
    figure = plots.neighbour_grid(rng.random((12, 4, 4, 3)), rng.normal(size=(12, 3)), labels,
                                  queries=4, k=3)
    assert len(figure.axes) == 4 * 4
    assert all(len(axes.get_images()) == 1 for axes in figure.axes)


# --- a compare: the same functions, seeds pooled -------------------------------------------------


def test_compare_curves_band_the_seeds_of_a_loss():
    histories = {"val/accuracy": {"ce": [np.array([0.1, 0.5]), np.array([0.3, 0.7])],
                                  "focal": [np.array([0.2, 0.6])]}}
    (axes,) = plots.curves(histories, "t").axes
    assert len(axes.get_lines()) == 2
    assert len(axes.collections) == 1  # a band for ce (two seeds), none for focal (one)


def test_compare_recall_has_whiskers_and_a_legend():
    recalls = {"ce": np.array([[0.1, 0.9], [0.3, 0.7]]), "focal": np.array([[0.5, 0.5]] * 2)}
    (axes,) = plots.per_class_recall(recalls, np.array([5, 50])).axes
    assert len(axes.patches) == 4  # two losses × two classes
    assert len(axes.containers) == 4  # per loss: its bars and their whiskers
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["ce (n=2)", "focal (n=2)"]


def test_report_reliability_is_one_panel_per_loss():
    figure = report_figures.reliability({"ce": _probs(seed=1), "focal": _probs(seed=2)})
    assert len(figure.axes) == 2
    assert [a.get_title().split(":")[0] for a in figure.axes] == ["ce", "focal"]
    assert "pooled over seeds" in figure.get_suptitle()
    with pytest.raises(ValueError, match="at least one"):
        plots.reliability({})


# --- landscape -------------------------------------------------------------------------------------


def test_landscape_figures_have_their_panels():
    drawn = landscape.figures(_landscape(), "t")
    assert set(drawn) == {"landscape_line.png", "landscape_contour.png",
                          "landscape_surface.png", "landscape_sharpness.png"}
    assert len(drawn["landscape_contour.png"].axes) == 2  # the slice and its colour bar
    assert drawn["landscape_surface.png"].axes[0].name == "3d"
    assert len(landscape.side_by_side({"a": _landscape(), "b": _landscape()}, "t").axes) == 4
