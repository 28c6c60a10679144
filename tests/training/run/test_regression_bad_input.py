"""Regression's bad input through the command line's own function (in-process): each case
exits 2 with one error line naming the bad value, and leaves no run in the store (the data
are read and checked before a run opens)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from training.cli import run_cli
from training.train import train

GOOD = "x,stadt,w,y\n1.0,a,1,2.0\n2.0,b,1,4.1\n3.0,a,2,6.2\n4.0,b,1,7.9\n5.0,a,1,10.1\n"


def _csv(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return f"csv:{path}"


def _cases(tmp: Path) -> list[tuple[list[str], str]]:
    good = _csv(tmp, "good.csv", GOOD)
    rows = GOOD.splitlines()
    nan = _csv(tmp, "nan.csv", "\n".join([*rows[:2], "nan,a,1,3.0", rows[3], "inf,b,1,1",
                                          *rows[4:]]) + "\n")
    inf_target = _csv(tmp, "inf.csv", "\n".join([*rows[:3], "9.0,a,1,inf", *rows[3:]]) + "\n")
    text_target = _csv(tmp, "text.csv", GOOD.replace("6.2", "six"))
    negative = _csv(tmp, "neg.csv", GOOD.replace("3.0,a,2", "3.0,a,-2"))
    zero = _csv(tmp, "zero.csv", "x,w,y\n1,0,1\n2,0,2\n3,0,3\n4,0,4\n5,0,5\n")
    mse = ["loss=mse", "epochs=1"]
    return [
        ([*mse, f"dataset={good}", "target=price"], "no target column 'price'; columns: x, stadt, w, y"),
        ([*mse, f"dataset={text_target}", "target=y"], "target column 'y' is not numeric: 'six' at line 4"),
        ([*mse, f"dataset={nan}", "target=y"], "2 row(s) hold NaN or inf in feature 'x' (2); first: line 3, line 5"),
        ([*mse, f"dataset={inf_target}", "target=y"], "1 row(s) hold NaN or inf in target 'y' (1); first: line 4"),
        ([*mse, f"dataset={negative}", "target=y", "weight=w"], "1 negative weight(s), e.g. -2 at line 4"),
        ([*mse, f"dataset={zero}", "target=y", "weight=w"], "every weight is 0"),
        ([*mse, f"dataset={good}", "target=y", "weight=wt"], "no weight column 'wt'; columns: x, stadt, w, y"),
        ([*mse, f"dataset={_csv(tmp, 'empty.csv', '')}", "target=y"], "empty.csv is empty"),
        ([*mse, f"dataset={_csv(tmp, 'head.csv', 'x,y')}", "target=y"], "holds a header (x, y) but no rows"),
        ([*mse, f"dataset={_csv(tmp, 'tiny.csv', 'x,y' + chr(10) + '1,2' + chr(10) + '2,3')}",
          "target=y"], "2 usable row(s): too small to split into train/val/test"),
        ([*mse, f"dataset={good}"], "needs target=COLUMN"),
        ([*mse, "dataset=digits"], "dataset=digits holds class labels (a classification dataset) but the loss is a regression loss"),
        (["loss=ce", "dataset=diabetes"], "dataset=diabetes is a regression dataset (float or negative targets, not class labels 0..C-1) but the loss is a classification loss"),
        (["loss=triplet", f"dataset={good}", "target=y"], "regression dataset (float or negative targets, not class labels 0..C-1) but the loss is a retrieval loss"),
        ([*mse, "dataset=diabetes", "target=y"], "target=y names a column of a csv: dataset"),
        ([*mse, "dataset=diabetes", "outliers=1.5"], "outliers=1.5 is out of range"),
        ([*mse, "dataset=diabetes", "hidden=64,x"], "hidden='64,x' is not valid"),
        ([*mse, "dataset=diabetes", "dropout=1"], "dropout=1.0 is out of range"),
        ([*mse, "dataset=diabetes", "model=small_cnn"], "model=small_cnn takes images; this dataset gives feature rows (10,)"),
        (["loss=ce", "outliers=0.1"], "outliers and drop_nan are for regression"),
        ([*mse, "dataset=diabetes", "imbalance=10"], "imbalance=10 and head=auto are for classification"),
        ([*mse, f"dataset={good}", "target=y", "augment=strong"], "augment=strong transforms images"),
        ([*mse, "dataset=diabetes", "augment=light"], "dataset=diabetes is a table"),
        (["loss=pinball", "dataset=diabetes", "quantiles=0.5,0.1"], "quantiles=0.5,0.1 is not sorted"),
        (["loss=pinball", "dataset=diabetes", "quantiles=0.1,1.5"], "quantiles=0.1,1.5 has 1.5 out of range"),
    ]


def test_regression_bad_input_exit_2_one_line_no_run(mlflow_store, tmp_path, capsys,
                                                     monkeypatch):
    monkeypatch.delenv("DEBUG", raising=False)
    failures = []
    for argv, text in _cases(tmp_path):
        code = run_cli(train, [*argv, f"checkpoint_dir={tmp_path / 'ck'}"])
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error")]
        if code != 2 or len(errors) != 1 or text not in err or "Traceback" in err:
            failures.append((argv, code, text, err[-500:]))
    assert failures == [], "\n".join(map(str, failures))
    client = mlflow.MlflowClient(mlflow_store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs == []


@pytest.mark.slow
def test_list_of_float_targets_refuses_a_classification_loss(mlflow_store, tmp_path, capsys):
    from PIL import Image

    from tests.training.data.written import mnist

    images, labels = mnist(12)
    for i, image in enumerate(images):
        Image.fromarray(image, mode="L").save(tmp_path / f"{i}.png")
    (tmp_path / "l.txt").write_text("".join(f"{i}.png {v + 0.5}\n" for i, v in enumerate(labels)))
    code = run_cli(train, ["loss=ce", "dataset=list:l.txt", f"data_root={tmp_path}", "epochs=1"])
    assert code == 2
    assert "dataset=list:l.txt is a regression dataset (float or negative targets, not class labels 0..C-1)" in capsys.readouterr().err
