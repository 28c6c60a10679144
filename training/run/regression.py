"""The trainer's regression path: val/test scores, the data lineage and the test figures.

`regression_scores` is what `EpochEvaluation` calls each epoch (val) and the trainer once at
the end (test). It scores the head's point prediction with `training.metrics.regression`
(rmse, mae, r2, median_ae) and adds `output_metrics`, the hook for what a loss's own output
allows (quantile coverage, Gaussian NLL); `test_outputs_and_figures` logs the raw test
outputs (eval/test_outputs.npz: outputs (N, units), targets (N,), weights (N,)) and the
figures. Sample weights (weight=COLUMN) weight the loss and every metric.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import mlflow
import numpy as np

from training.config import SELECTION_METRIC, Config
from training.metric_catalog import direction
from training.metrics.regression import output_metrics, point_prediction, regression_metrics
from training.metrics.regression_intervals import head_variance
from training.plots import regression as regression_plots
from training.run import evaluate, tracking
from training.run.backbone import regression_quantiles


def selection(config: Config) -> tuple[str, str]:
    """(Keras monitor name, mode) of the task's selection metric, for early stopping: its
    direction from the metric catalogue (regression: val/rmse, minimised)."""
    name = SELECTION_METRIC[config.task]
    mode = "min" if direction(name) == "minimize" else "max"
    return "val_" + name.removeprefix("val/"), mode


def regression_scores(model, loss_fn, x, y, weights, config: Config):
    """→ ({loss, rmse, mae, r2, median_ae, ...}, raw outputs float32 (N, units)).

    `loss` is the run's own loss on the split (weighted like training) plus the model's
    regularisation penalty, as Keras's train/loss is, so the two curves compare."""
    outputs = evaluate.predict(model, x)
    outputs = outputs.reshape(len(outputs), -1)
    quantiles = regression_quantiles(config)
    output = config.spec.output
    scores = regression_metrics(point_prediction(outputs, output, quantiles), y, weights)
    scores.update(output_metrics(outputs, y, weights, output, config.resolved_loss_args()))
    sample_weight = None if weights is None else np.asarray(weights, np.float32)
    data_loss = float(np.asarray(loss_fn(np.asarray(y, np.float32), outputs,
                                         sample_weight=sample_weight)))
    scores["loss"] = data_loss + evaluate.regularization_penalty(model)
    return scores, outputs


def evaluator(config: Config, model, loss_fn, splits):
    """() → the val scores of the current weights (what EpochEvaluation logs as val/…)."""
    return lambda: regression_scores(model, loss_fn, splits.x_val, splits.y_val,
                                     splits.w_val, config)[0]


def test_outputs_and_figures(config: Config, model, loss_fn, splits) -> dict[str, float]:
    """Test scores (the only read of the test split), the raw outputs and the figures."""
    scores, outputs = regression_scores(model, loss_fn, splits.x_test, splits.y_test,
                                        splits.w_test, config)
    arrays = {"outputs": outputs, "targets": splits.y_test}
    if splits.w_test is not None:
        arrays["weights"] = splits.w_test
    tracking.log_arrays(arrays, "eval/test_outputs.npz")
    point = point_prediction(outputs, config.spec.output, regression_quantiles(config))
    title = f"{config.loss} on {config.dataset} (seed {config.seed})"
    tracking.log_figure(regression_plots.prediction_scatter(splits.y_test, point, title),
                        "plots/predictions.png")
    tracking.log_figure(regression_plots.residuals(splits.y_test, point, title),
                        "plots/residuals.png")
    if config.spec.output == "mean_logvar":  # predicted σ against the observed |error|
        sigma = np.sqrt(head_variance(outputs, config.resolved_loss_args()))
        tracking.log_figure(regression_plots.sigma_calibration_figure(
            sigma, splits.y_test - point, title=title), "plots/sigma_calibration.png")
    return scores


def log_data(splits, contexts: tuple[str, ...]) -> None:
    """Dataset lineage of a regression run: one `log_input` per split (rows, target mean and
    std, weighted or not), and the params of what the data steps did: rows dropped for
    NaN/inf (drop_nan), training targets corrupted (outliers), the feature columns."""
    for context in contexts:
        x, y = getattr(splits, f"x_{context}"), getattr(splits, f"y_{context}")
        features = getattr(x, "array", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # MLflow's source-type guess
            dataset = mlflow.data.from_numpy(features if features is not None else y,
                                             targets=y, name=f"{splits.name}:{context}",
                                             source=_source(splits.name))
        tags = {"examples": str(len(y)), "target_mean": f"{float(np.mean(y)):.6g}",
                "target_std": f"{float(np.std(y)):.6g}",
                "weighted": str(getattr(splits, f"w_{context}") is not None).lower()}
        mlflow.log_input(dataset, context=context, tags=tags)
    params = {"data.dropped_rows": splits.dropped_rows, "data.outlier_rows": splits.outlier_rows,
              "data.features": int(splits.x_train.shape[1]) if len(splits.input_shape) == 1
              else "image", "data.weighted": splits.w_train is not None}
    mlflow.log_params(params)
    tracking.log_metrics({"data/dropped_rows": splits.dropped_rows}, step=0)
    if splits.feature_names:
        mlflow.log_text("\n".join(splits.feature_names) + "\n", "data/features.txt")


def _source(name: str) -> str:
    """Where a regression dataset came from: a table's file, scikit-learn's page, else as
    the classification sources say (list:, module:function)."""
    if name.startswith("csv:"):
        return str(Path(name[4:]).expanduser().resolve())
    if name == "diabetes":
        return "https://scikit-learn.org/stable/datasets/toy_dataset.html#diabetes-dataset"
    return tracking._source(name)


def input_settings(splits) -> dict:
    """The data params a run logs about its input: feature rows or images."""
    if len(splits.input_shape) == 1:
        return {"data.cache": splits.cache, "data.input": f"{splits.input_shape[0]} features"}
    height, _, channels = splits.input_shape
    return {"data.cache": splits.cache, "data.image_size": height, "data.channels": channels}
