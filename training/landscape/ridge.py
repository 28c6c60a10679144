"""The essay's ridge claim as numbers: one linear MSE model per λ, its Hessian measured and in
closed form, its condition number and test RMSE in one table.

    python -m training.landscape.ridge [lambdas=0,0.001,0.01,0.1] [figure=PATH] [points=21]
                                       [any training key: epochs=30 seed=0 dataset=diabetes ...]
    make ridge EPOCHS=30 ARGS="figure=docs/ridge_landscape.png"

Each λ trains ``model=linear loss=mse l2=λ`` (default ``dataset=diabetes``) with the trainer,
nested under one parent run ``ridge``. On the run's training split, at its final weights:

- closed form: ``H = 2ZᵀZ/n + 2λ diag(1, …, 1, 0)`` (``closed_form.py``; ``l2`` is a kernel
  regulariser, the bias is not penalised) and its condition number ``λ_max/λ_min``;
- measured: Lanczos top and bottom eigenvalue on Hessian-vector products
  (``hessian.top_eigenvalues``/``min_eigenvalue``), their ratio, and the exact trace
  (``small_hessian.measure``);
- the run's ``test/rmse``, beside the test RMSE of the exact minimiser of the same objective
  (normal equations): equal when training has converged.

The table is printed and logged to the parent (``ridge_table.md``, ``ridge_table.json`` and
metrics ``ridge/l2_<λ>/<name>``). The 2-D landscape (``landscape.compute_landscape``, seed 0)
of the smallest and the largest λ is drawn side by side (``ridge_landscape.png``; also written
to ``figure=PATH`` when given). Exit codes: 0 done, 2 bad arguments, 1 any other failure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import mlflow
import numpy as np

from training.cli import EXIT_BAD_INPUT, run_cli
from training.config import Config, parse_overrides
from training.errors import ConfigError
from training.keyvalue import pairs
from training.landscape.closed_form import (
    closed_form_of_model,
    condition_number,
    design_matrix,
    features_of,
    linear_head,
)
from training.landscape.from_run import landscape_for_config
from training.landscape.small_hessian import measure
from training.plots.landscape import side_by_side
from training.run import tracking
from training.run.builders import build_loss, build_splits
from training.run.trainer import train

LAMBDAS = (0.0, 1e-3, 1e-2, 1e-1)
FIXED = {"model": "linear", "loss": "mse"}  # the closed form holds for these only
# target_scale=false: the loss sees raw targets, so H is the essay's 2XᵀX/n + 2λ (with the
# default Rescaling it is 2s²XᵀX/n + 2λ, see closed_form.py). SGD with Nesterov momentum at
# 0.1 is stable (λ_max ≈ 8 < 2(1 + 0.9)/0.1) and reaches the least-squares test RMSE on
# diabetes within 100 epochs (54.16 trained vs 54.16 exact, seed 0); Adam at 2e-3 needs
# thousands of steps to move the bias to the targets' mean of 152.
DEFAULTS = {"dataset": "diabetes", "epochs": "100", "optimizer": "sgd", "learning_rate": "0.1",
            "target_scale": "false"}
OWN_KEYS = ("lambdas", "figure", "points")
USAGE = ("usage: python -m training.landscape.ridge [lambdas=0,0.001,0.01,0.1] [figure=PATH] "
         "[points=21] [training keys: epochs=30 seed=0 dataset=diabetes ...]")
COLUMNS = ("l2", "cond_closed", "cond_measured", "top_closed", "top_measured", "min_closed",
           "min_measured", "trace_closed", "trace_measured", "test_rmse", "test_rmse_exact")


class ModelAtEnd(keras.callbacks.Callback):
    """Keeps the trainer's own model object (not a copy: its final weights once ``train``
    returns) and its initial weights (the landscape's initial → final line)."""

    initial: list | None = None

    def on_train_begin(self, logs=None):
        self.initial = self.model.get_weights()


def parse(argv: list[str]) -> dict:
    """→ {lambdas (tuple), figure (Path | None), points (int), config (Config of λ = 0)}."""
    given = dict(pairs(argv))
    for key, value in FIXED.items():
        if given.get(key, value) != value:
            raise ConfigError(f"{key}={given[key]!r}: the ridge table's closed form needs "
                              f"{key}={value}; valid: {key}={value} (or leave it out)")
    own = {k: given.pop(k) for k in OWN_KEYS if k in given}
    try:
        lambdas = tuple(float(v) for v in own.get("lambdas", ",".join(map(str, LAMBDAS)))
                        .split(","))
        points = int(own.get("points", "21"))
    except ValueError:
        raise ConfigError(f"lambdas={own.get('lambdas')!r} / points={own.get('points')!r}: "
                          "valid: comma-separated numbers >= 0, an odd integer >= 3") from None
    if not lambdas or min(lambdas) < 0 or not np.all(np.isfinite(lambdas)):
        raise ConfigError(f"lambdas={own['lambdas']!r}: valid: comma-separated numbers >= 0")
    if points < 3 or points % 2 == 0:
        raise ConfigError(f"points={points}: valid: an odd integer >= 3")
    if "l2" in given:
        raise ConfigError(f"l2={given['l2']!r}: the ridge table sets l2 itself; valid: "
                          "lambdas=0,0.001,... instead")
    words = {**DEFAULTS, **given, **FIXED}
    config = parse_overrides([f"{k}={v}" for k, v in words.items()])
    if config.weight:  # the closed form and HessianOfLoss are the unweighted mean
        raise ConfigError(f"weight={config.weight!r}: the ridge table's closed form is "
                          "unweighted least squares; valid: no weight= key")
    figure = Path(own["figure"]) if own.get("figure") else None
    return {"lambdas": lambdas, "figure": figure, "points": points, "config": config}


def exact_ridge_rmse(model, splits, l2: float) -> float:
    """Test RMSE of the exact minimiser of the training objective on the model's features,
    ``θ = argmin (1/n)‖y − s·Zθ − c‖² + λ‖w‖²``: ``(s²ZᵀZ/n + λD) θ = s Zᵀ(y − c)/n``."""
    head = linear_head(model)
    bias = head.dense.use_bias
    z = design_matrix(features_of(model, splits.x_train), bias=bias)
    centred = np.asarray(splits.y_train, np.float64) - head.offset
    penalty = np.diag(np.r_[np.ones(z.shape[1] - bias), np.zeros(int(bias))])
    theta = np.linalg.solve(head.scale**2 * z.T @ z / len(z) + l2 * penalty,
                            head.scale * z.T @ centred / len(z))
    test = design_matrix(features_of(model, splits.x_test), bias=bias)
    predicted = head.scale * test @ theta + head.offset
    return float(np.sqrt(np.mean((predicted - np.asarray(splits.y_test, np.float64)) ** 2)))


def ridge_row(model, x_train: np.ndarray, y_train: np.ndarray, l2: float, loss_fn) -> dict:
    """One table row (``COLUMNS`` but the test RMSEs) at the model's current weights."""
    closed = np.linalg.eigvalsh(closed_form_of_model(model, x_train, l2))
    got = measure(model, loss_fn, x_train, y_train)
    return {
        "l2": float(l2), "cond_closed": condition_number(closed), "cond_measured": got["condition"],
        "top_closed": float(closed[-1]), "top_measured": got["top"],
        "min_closed": float(closed[0]), "min_measured": got["min"],
        "trace_closed": float(closed.sum()), "trace_measured": got["trace_exact"],
    }


def table_markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table, one line per λ."""
    head = "| λ | κ closed form | κ measured | λ_max closed / measured | λ_min closed / " \
           "measured | trace closed / measured | test RMSE trained / exact minimiser |"
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        lines.append(f"| {r['l2']:g} | {r['cond_closed']:.1f} | {r['cond_measured']:.1f} | "
                     f"{r['top_closed']:.4f} / {r['top_measured']:.4f} | "
                     f"{r['min_closed']:.4f} / {r['min_measured']:.4f} | "
                     f"{r['trace_closed']:.3f} / {r['trace_measured']:.3f} | "
                     f"{r['test_rmse']:.2f} / {r['test_rmse_exact']:.2f} |")
    return "\n".join(lines)


def ridge(settings: dict) -> list[dict]:
    """Train, measure and log every λ; → the rows (``COLUMNS``)."""
    base: Config = settings["config"]
    lambdas = settings["lambdas"]
    rows, landscapes = [], {}
    # The data first: a dataset that is missing or not a regression table fails here with
    # exit 2, before any run. The split depends on the seed only, the same for every λ.
    splits = build_splits(base)
    parent_config = base.replace(run_name="ridge")
    with tracking.open_run(parent_config, tags={"losslab.kind": "ridge"}) as parent:
        mlflow.log_params({"lambdas": ",".join(f"{v:g}" for v in lambdas),
                           "dataset": base.dataset, "epochs": base.epochs, "seed": base.seed})
        for l2 in lambdas:
            config = base.replace(l2=l2, run_name=f"linear-mse-l2={l2:g}-seed{base.seed}")
            keep = ModelAtEnd()
            result = train(config, parent_run_id=parent.info.run_id, callbacks=[keep])
            loss_fn = build_loss(config, splits.y_train, splits.num_classes)
            row = ridge_row(keep.model, splits.x_train, splits.y_train, l2, loss_fn)
            row["test_rmse"] = float(result["rmse"])
            row["test_rmse_exact"] = exact_ridge_rmse(keep.model, splits, l2)
            rows.append(row)
            if l2 in (min(lambdas), max(lambdas)):
                landscapes[f"λ = {l2:g}"] = landscape_for_config(
                    config, keep.model, loss_fn, keep.initial, splits.x_train, splits.y_train,
                    points=settings["points"])
            print(f"λ={l2:g}: condition number {row['cond_closed']:.1f} closed form, "
                  f"{row['cond_measured']:.1f} measured; test RMSE {row['test_rmse']:.2f}",
                  flush=True)
        table = table_markdown(rows)
        mlflow.log_text(table + "\n", "ridge_table.md")
        mlflow.log_text(json.dumps(rows, indent=1), "ridge_table.json")
        mlflow.log_metrics({f"ridge/l2_{r['l2']:g}/{name}": r[name]
                            for r in rows for name in COLUMNS if name != "l2"})
        figure = side_by_side(landscapes, f"linear model, mse on {base.dataset}: the ridge bowl")
        mlflow.log_figure(figure, "ridge_landscape.png")
        if settings["figure"] is not None:
            settings["figure"].parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(settings["figure"])
    print(table)
    print(f"logged to run {parent.info.run_id} (ridge_table.md, ridge_landscape.png)"
          + (f"; figure written to {settings['figure']}" if settings["figure"] else ""))
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_cli(ridge, argv, parse, help_text=lambda _: USAGE + "\n\n" + __doc__,
                   show=lambda s: f"ridge table: λ in {list(s['lambdas'])} on "
                                  f"{s['config'].dataset}, {s['config'].epochs} epochs")


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["EXIT_BAD_INPUT", "main", "ridge", "ridge_row", "table_markdown"]
