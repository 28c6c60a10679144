"""A user's own loss takes part like ours: registered in a test, or by import path as the
README's worked example shows; --help, train, resume, compare and the README table take it up
with no other edit."""

from __future__ import annotations

import keras
import mlflow
import pytest

import losses
from losses import catalog
from training.compare import child_configs, parse_settings
from training.compare import main as compare_main
from training.help import compare_help, loss_table, train_help
from training.study.compare_settings import default_variants
from training.train import train


class ToyHinge(keras.losses.Loss):
    """Toy multiclass hinge, registered by a test."""

    def __init__(self, margin=1.0, name="toy_hinge", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.margin = margin

    def call(self, y_true, y_pred):
        y = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"),
                              keras.ops.shape(y_pred)[-1])
        true = keras.ops.sum(y * y_pred, axis=-1, keepdims=True)
        return keras.ops.sum(keras.ops.relu(self.margin + y_pred - true) * (1 - y), axis=-1)


@pytest.fixture
def toy_registered():
    losses.register("toy_hinge", task="classification", summary="toy hinge of a test",
                    args={"margin": {"low": 0.0, "doc": "hinge margin of the toy"}})(ToyHinge)
    yield losses.spec("toy_hinge")
    catalog.remove("toy_hinge")


def test_a_registered_toy_loss_reaches_help_compare_and_the_readme_table(toy_registered):
    text = train_help(["loss=toy_hinge"])
    assert "  toy_hinge " in text and "margin: float, default 1.0; >= 0 number" in text
    assert "  toy_hinge " in compare_help([], [])
    assert "| `toy_hinge` | classification | logits | `margin=1.0` | toy hinge of a test |" in (
        loss_table())
    assert "toy_hinge" in default_variants()
    runs = child_configs(parse_settings(["losses=ce,toy_hinge", "seeds=1", "margin=0.5"]))
    assert [(v, c.loss, c.loss_args) for v, c in runs] == [
        ("ce", "ce", {}), ("toy_hinge", "toy_hinge", {"margin": 0.5})]


@pytest.mark.slow
def test_a_registered_toy_loss_trains(toy_registered, tiny, mlflow_store):
    result = train(tiny(loss="toy_hinge", loss_args={"margin": 0.5}, epochs=1))
    run = mlflow.MlflowClient().get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["loss.margin"] == "0.5"
    assert run.data.tags["losslab.loss_class"].endswith("test_custom_loss:ToyHinge")


def _readme_example() -> str:
    from test_readme import custom_loss_example

    return custom_loss_example()


@pytest.mark.slow
def test_the_readme_custom_loss_trains_resumes_and_compares_against_ce(tmp_path, tiny,
                                                                      mlflow_store, monkeypatch,
                                                                      capsys):
    (tmp_path / "my_losses.py").write_text(_readme_example())
    monkeypatch.syspath_prepend(str(tmp_path))
    # make train LOSS=my_losses:Hinge ARGS="margin=0.5", then RESUME= (in-process: same code)
    first = train(tiny(loss="my_losses:Hinge", loss_args={"margin": 0.5}, epochs=1))
    client = mlflow.MlflowClient()
    assert client.get_run(first["run_id"]).data.tags["losslab.loss_class"] == "my_losses:Hinge"
    from training.cli import resolve_config

    resumed = train(resolve_config([f"resume={first['run_id']}", "epochs=2"]))
    run = client.get_run(resumed["run_id"])
    assert resumed["run_id"] == first["run_id"] and run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2]
    # make compare LOSSES=ce,my_losses:Hinge: the command's entry point, in this process
    # (my_losses is importable from tmp_path, as from a user's working directory).
    capsys.readouterr()
    code = compare_main(["losses=ce,my_losses:Hinge", "seeds=1", "epochs=1", "dataset=digits",
                         f"checkpoint_dir={tmp_path / 'ck'}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    assert "| my_losses:Hinge | 1 |" in captured.out
