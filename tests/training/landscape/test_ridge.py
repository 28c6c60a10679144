"""The ridge table command: bad input exits 2 with no run; end to end on diabetes (1 epoch)."""

from __future__ import annotations

import json
import types

import keras
import mlflow
import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from training.errors import ConfigError
from training.landscape.ridge import exact_ridge_rmse, main, parse, table_markdown


@pytest.mark.parametrize("words, needle", [
    (["model=mlp"], "model='mlp': the ridge table's closed form needs model=linear"),
    (["loss=mae"], "loss='mae': the ridge table's closed form needs loss=mse"),
    (["l2=0.1"], "l2='0.1': the ridge table sets l2 itself"),
    (["lambdas=0,-1"], "lambdas='0,-1': valid: comma-separated numbers >= 0"),
    (["lambdas=a"], "lambdas='a'"),
    (["points=4"], "points=4: valid: an odd integer >= 3"),
    (["epochs=x"], "epochs"),
    (["dataset=csv:t.csv", "target=y", "weight=w"], "weight=.w.: the ridge table.s closed form"),
])
def test_bad_arguments_are_named(words, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        parse(words)


def test_defaults():
    settings = parse([])
    assert settings["lambdas"] == (0.0, 1e-3, 1e-2, 1e-1)
    config = settings["config"]
    assert (config.dataset, config.model, config.loss, config.l2) == ("diabetes", "linear",
                                                                     "mse", 0.0)
    assert settings["figure"] is None and settings["points"] == 21


def test_bad_input_exits_2_and_leaves_no_run(mlflow_store, capsys):
    assert main(["loss=mae"]) == 2
    assert "error: loss='mae'" in capsys.readouterr().err
    assert main(["dataset=digits"]) == 2  # a classification dataset: found when it loads
    assert "digits" in capsys.readouterr().err
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_table_has_one_line_per_lambda():
    row = dict(l2=0.1, cond_closed=37.99, cond_measured=38.0, top_closed=8.2, top_measured=8.2,
               min_closed=0.217, min_measured=0.217, trace_closed=24.0, trace_measured=24.0,
               test_rmse=55.55, test_rmse_exact=55.5)
    lines = table_markdown([row, {**row, "l2": 0.0}]).splitlines()
    assert len(lines) == 4 and lines[2].startswith("| 0.1 | 38.0 | 38.0 |")
    assert lines[2].endswith("| 55.55 / 55.50 |") and lines[3].startswith("| 0 |")


@pytest.mark.parametrize("l2, scale", [(0.0, None), (0.1, None), (0.1, 3.0)])
def test_exact_minimiser_is_scikit_learns_ridge(l2, scale):
    # scikit-learn minimises ‖y − Xβ − b‖² + α‖β‖² (a sum): α = nλ/s² for our mean + λ‖w‖²
    # with ŷ = s·(Xw + b) + c, since β = s·w.
    x, y = load_diabetes(return_X_y=True)
    x, y = x.astype("float32"), y.astype("float32")
    train, test = slice(0, 350), slice(350, None)
    norm = keras.layers.Normalization()
    norm.adapt(x[train])
    layers = [keras.Input((10,)), norm, keras.layers.Dense(1)]
    if scale:
        layers.append(keras.layers.Rescaling(scale, 150.0))
    model = keras.Sequential(layers)
    splits = types.SimpleNamespace(x_train=x[train], y_train=y[train], x_test=x[test],
                                   y_test=y[test])
    z = np.asarray(norm(x), np.float64)
    reference = Ridge(alpha=350 * l2 / (scale or 1.0) ** 2).fit(z[train], y[train])
    want = np.sqrt(np.mean((reference.predict(z[test]) - y[test]) ** 2))
    assert exact_ridge_rmse(model, splits, l2) == pytest.approx(want, rel=1e-5)


@pytest.mark.slow
def test_ridge_end_to_end_on_diabetes(mlflow_store, tmp_path, capsys):
    figure = tmp_path / "docs" / "ridge.png"
    code = main(["lambdas=0,0.1", "epochs=1", "points=5", f"figure={figure}",
                 f"checkpoint_dir={tmp_path / 'ckpt'}"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| λ | κ closed form | κ measured |" in out
    runs = mlflow.search_runs(search_all_experiments=True)
    assert set(runs["status"]) == {"FINISHED"} and len(runs) == 3
    parent = runs[runs["tags.mlflow.runName"] == "ridge"].iloc[0]
    rows = json.loads(mlflow.artifacts.load_text(f"runs:/{parent.run_id}/ridge_table.json"))
    assert [r["l2"] for r in rows] == [0.0, 0.1]
    for r in rows:  # measured on Hv products vs the closed form of the same rows
        for name in ("cond", "top", "min", "trace"):
            assert r[f"{name}_measured"] == pytest.approx(r[f"{name}_closed"], rel=0.01), name
        assert np.isfinite(r["test_rmse"]) and r["test_rmse"] > 0
        assert 50 < r["test_rmse_exact"] < 60  # the least-squares fit of diabetes
    # the ridge lifts the bottom of the kernel spectrum by 2λ: the valley is better conditioned
    assert rows[1]["min_closed"] == pytest.approx(rows[0]["min_closed"] + 0.2, rel=1e-6)
    assert rows[1]["cond_closed"] < rows[0]["cond_closed"] / 5
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.run_id)}
    assert {"ridge_table.md", "ridge_table.json", "ridge_landscape.png"} <= artifacts
