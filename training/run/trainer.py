"""The trainer: `train(config) -> results`, read top to bottom (CLI: `python -m training.train`).

Sections: runtime → data → loss/model/optimiser → tracking run → fit → test → artifacts.
The test split is read once, after training; validation drives nothing but the curves.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

import keras
import mlflow
import numpy as np

from models import inference_model
from training import plots
from training.config import Config
from training.landscape import curvature, landscape_for_config, log_landscape
from training.run import (
    backbone,
    checkpoint,
    evaluate,
    optim,
    regression,
    runtime,
    stage2,
    tracking,
)
from training.run.builders import (
    build_loss,
    build_model,
    build_optimizer,
    build_splits,
    build_train_data,
    drw_schedule,
    statistics_metrics,
)
from training.run.callbacks import EpochEvaluation, MlflowLogger, StopOnNonFinite
from training.run.checkpoint import Checkpoint
from training.run.sam import sam_from_config
from training.tags import STOPPED_EPOCH_TAG, VARIANT_TAG


def train(
    config: Config,
    *,
    parent_run_id: str | None = None,
    callbacks: list | None = None,
    evaluate_test: bool = True,
    log_model: bool = True,
    tags: dict[str, str] | None = None,
) -> dict:
    """Train one model as `config` says and track it in MLflow. Returns test metrics + run id.

    Args:
        parent_run_id: nest the run under this one (a compare or a study).
        callbacks: extra Keras callbacks, run after ours at each epoch end, so they see the
            epoch's `val_<metric>` logs (a tuner's pruning callback).
        evaluate_test: False for runs that must not read the test split (tuning trials):
            no `test/` metrics, no test figures.
        log_model: False for runs nobody deploys (tuning trials): no MLflow LoggedModel, so
            a study's hundred trials do not fill the experiment's Models tab (and save ~1 s
            each); their weight files are still logged and checkpointed.
        tags: extra tags set when the run starts.
    """
    started = time.perf_counter()
    # --- tracking store and checkpoint folder: unusable ones fail here, before any work ---
    tracking.check_store()
    checkpoint.check_root(config.checkpoint_dir)
    strategy = runtime.setup(config)  # first: devices and collectives precede any TF op
    chief = runtime.is_chief(strategy)  # False only on multi_worker workers other than 0

    # --- data: splits are deterministic in the seed; test is held back until the end ----
    splits = build_splits(config)
    # Resume: the run's checkpoint is checked before anything is reopened. Batches depend only
    # on (seed, epoch), so starting the pipeline at the next epoch replays the uninterrupted run.
    initial_epoch, history, resume = 0, {}, None
    if config.resume:
        ckpt_dir = checkpoint.folder_of(config.resume, config.checkpoint_dir)
        resume = checkpoint.resume_state(  # a stage 2 still to run counts as one epoch more
            ckpt_dir, config.resume, config.epochs + stage2.pending_epochs(config, ckpt_dir))
        initial_epoch, history = resume["epoch"], resume["history"]
    # Deferred re-weighting (LDAM-DRW): class weights enter as sample weights from its epoch.
    reweight = drw_schedule(config, splits.y_train, splits.num_classes)
    train_data, steps = build_train_data(
        config, splits.x_train, splits.y_train, initial_epoch, reweight=reweight,
        weights=splits.w_train,  # regression: weight=COLUMN as sample_weight
    )
    train_data = runtime.shard_by_data(train_data)  # multi_worker: each its slice of a batch

    # --- loss, model, optimiser ---------------------------------------------------------
    loss_fn = build_loss(config, splits.y_train, splits.num_classes)
    with strategy.scope():
        model = build_model(config, splits.x_train.shape[1:], splits.num_classes, splits)
        sam_from_config(model, config)  # sam_rho > 0: SAM/ASAM steps (training/run/sam.py)
        runtime.sync_batch_norm(model, strategy)  # >1 replica: global-batch statistics
        model.compile(
            optimizer=build_optimizer(config, steps, model),  # per-variable rates, decay
            loss=loss_fn,
            metrics=statistics_metrics(loss_fn),
            jit_compile=runtime.jit_compile(config),
        )
        if resume:  # weights, optimizer state and dropout RNG of the last completed epoch
            checkpoint.restore(model, ckpt_dir, resume)

    # --- multi_worker, not the chief: the same steps, untracked (see training/workers.py) --
    if not chief:
        return _fit_as_worker(config, model, train_data, steps, initial_epoch, history)

    run_tags = None if config.resume else {**tracking.run_tags(config), **(tags or {})}
    with tracking.open_run(
        config, run_id=config.resume, parent_run_id=parent_run_id, tags=run_tags
    ) as run:
        run_id = run.info.run_id
        if resume:
            _backfill_metrics(run_id, history)
            # Params are immutable: keys overridden on resume (e.g. epochs) are recorded here.
            mlflow.log_text(config.to_json(), f"config.resumed-after-epoch-{initial_epoch}.json")
            print(f"resuming run {run_id} after epoch {initial_epoch}", flush=True)
        else:
            ckpt_dir = checkpoint.run_folder(config.checkpoint_dir, run_id)
            tracking.log_config(config)
            backbone.log_source(config, model)  # backbone size, weights' origin and sha256
            if reweight is not None:  # 1-based, as the curves count epochs
                mlflow.log_param("loss.drw_epoch", reweight[0] + 1)
            contexts = ("train", "val", "test") if evaluate_test else ("train", "val")
            if config.task == "regression":
                regression.log_data(splits, contexts)
            else:
                tracking.log_dataset(splits, contexts)
            _log_data_settings(splits)
            checkpoint.start(model, ckpt_dir)  # initial weights; the run's tag points here

        # --- fit: val metrics (into Keras logs as val_<name>), checkpoint, MLflow log ------
        evaluate_val = _evaluator(config, model, loss_fn, splits.x_val, splits.y_val, splits)
        progress_bar = sys.stdout.isatty()  # Keras's bar on a terminal; one line per epoch else
        callbacks = [
            *optim.callbacks(config),  # warm-up: backbone frozen for the first epochs
            StopOnNonFinite(),
            EpochEvaluation(evaluate_val, history, print_lines=not progress_bar),
            Checkpoint(ckpt_dir, history, config.seed),
            MlflowLogger(history),
            *curvature.curvature_callbacks(config, loss_fn, splits),  # curvature_every
            *(callbacks or []),
        ]
        if config.early_stopping:
            monitor, mode = regression.selection(config)
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=config.early_stopping))
        model.fit(
            train_data,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,  # the pipelines are infinite (epoch e = f(seed, e))
            callbacks=callbacks,
            shuffle=False,  # the pipeline shuffles (seeded, per epoch)
            verbose=1 if progress_bar else 0,
        )
        epochs_done = len(history.get("train/loss", []))
        if epochs_done < config.epochs:  # early stopping: steps stay = epochs trained
            mlflow.set_tag(STOPPED_EPOCH_TAG, str(epochs_done))

        # --- stage 2 (stage2=): the classifier re-balanced on the frozen trunk -----------
        second = stage2.run(config, model, loss_fn, splits, ckpt_dir, step=epochs_done)
        deployed = second.model if second else model  # the logged model

        # --- artifacts: weights, the model (an MLflow LoggedModel) -----------------------
        for weights in checkpoint.save_final(model, ckpt_dir):
            tracking.log_file(weights, "weights")
        logged = (_log_model(deployed, splits.x_val[:4], drop_proxies=config.task == "retrieval",
                             name=model_name(config, tags))
                  if log_model else None)

        # --- test: read once, here (skipped for tuning trials: they select on val) ----
        test = {}
        if evaluate_test:
            test = _test_and_figures(config, model, loss_fn, splits, history)
            if second:  # test/stage2/<metric> beside the end-to-end test/<metric>
                test.update({f"stage2/{k}": v
                             for k, v in second.test_scores(loss_fn, splits).items()})
            tracking.log_metrics({f"test/{k}": v for k, v in test.items()}, step=epochs_done,
                                 model_id=logged and logged.model_id)
        wall = time.perf_counter() - started
        tracking.log_metrics({"time/wall_seconds": wall}, step=epochs_done)
        mlflow.set_tag("mlflow.note.content", tracking.run_description(config, run_id, test)
                       + (f" {second.note}" if second else ""))
        if config.landscape:
            initial = checkpoint.stored_weights(model, ckpt_dir / checkpoint.INITIAL)
            landscape = landscape_for_config(
                config, model, loss_fn, initial, splits.x_train, splits.y_train
            )
            log_landscape(landscape, title=f"{config.loss} on {config.dataset}")
        if curvature.wants_curvature(config):  # Hessian spectrum, trace, sharpness_rho
            curvature.log_for_run(config, model, loss_fn, splits, step=epochs_done,
                                  title=f"{config.loss} on {config.dataset}")

    _print_summary(config, run, test, wall)
    return {"run_id": run_id, "experiment_id": run.info.experiment_id, "wall_seconds": wall, **test}


# --- helpers of the sections above -------------------------------------------------------


def _fit_as_worker(config, model, train_data, steps, initial_epoch, history) -> dict:
    """A non-chief worker's fit: every step of the chief's (their all-reduces pair up), and
    StopOnNonFinite (the logged loss is the global one, so all stop together); no tracking,
    no evaluation. It checkpoints into a temporary folder that is then deleted, as
    TensorFlow recommends for non-chief workers: only the chief's checkpoint is kept."""
    with tempfile.TemporaryDirectory(prefix="losslab-worker-") as scratch:
        model.fit(
            train_data,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            callbacks=[*optim.callbacks(config), StopOnNonFinite(),
                       Checkpoint(Path(scratch), history, config.seed)],
            shuffle=False,
            verbose=0,
        )
    return {"run_id": None, "chief": False}


def _evaluator(config, model, loss_fn, x, y, splits):
    if config.task == "regression":
        return regression.evaluator(config, model, loss_fn, splits)
    if config.task == "classification":
        counts = _train_counts(splits)
        return lambda: evaluate.classification_scores(
            model, loss_fn, x, y, splits.num_classes, counts)[0]
    embedder = evaluate.embedding_model(model)  # proxy losses: the embedding under the head
    return lambda: evaluate.retrieval_scores(embedder, x, y)[0]


def _test_and_figures(config, model, loss_fn, splits, history) -> dict[str, float]:
    """Test metrics (the only read of the test split) and the run's figures."""
    x, y = splits.x_test, splits.y_test
    title = f"{config.loss} on {config.dataset} (seed {config.seed})"
    tracking.log_figure(plots.loss_curves(history, title), "plots/loss_curves.png")
    tracking.log_arrays({k: np.asarray(v) for k, v in history.items()}, "plots/history.npz")
    if config.task == "regression":
        return regression.test_outputs_and_figures(config, model, loss_fn, splits)
    if config.task == "classification":
        train_counts = _train_counts(splits)
        scores, probs, recall = evaluate.classification_scores(
            model, loss_fn, x, y, splits.num_classes, train_counts,
            tau_from=(splits.x_val, splits.y_val),  # τ of the τ-norm is chosen on val
        )
        names = splits.class_names[: splits.num_classes]
        # Per-class recall is a table beside its plot, not ten single-point metric charts.
        mlflow.log_table({"class": list(names), "train_images": train_counts.tolist(),
                          "test_images": np.bincount(y, minlength=splits.num_classes).tolist(),
                          "recall": [float(r) for r in recall]}, "eval/per_class_recall.json")
        predictions = probs.argmax(axis=1)
        # Raw test outputs, so reports can redraw reliability diagrams from the store alone.
        tracking.log_arrays({"probs": probs, "labels": y}, "eval/test_outputs.npz")
        tracking.log_figure(plots.confusion_matrix(y, predictions, names), "plots/confusion.png")
        tracking.log_figure(plots.reliability_diagram(probs, y), "plots/reliability.png")
        tracking.log_figure(
            plots.per_class_recall(recall, train_counts, names), "plots/per_class_recall.png"
        )
        return scores
    scores, embeddings = evaluate.retrieval_scores(evaluate.embedding_model(model), x, y)
    names = [str(c) for c in range(int(y.max()) + 1)]
    tracking.log_figure(plots.embedding_projection(embeddings, y, names), "plots/embeddings.png")
    tracking.log_figure(plots.neighbour_grid(x, embeddings, y), "plots/neighbours.png")
    return scores


def _log_data_settings(splits) -> None:
    """What the config left open, as resolved: the cache and the model's input; and the images
    skipped as unreadable (`skip_bad_images=true`): their count and the first 20 paths."""
    mlflow.log_params({**regression.input_settings(splits),
                       "data.skipped_images": splits.skipped_count})
    if splits.skipped_count:
        mlflow.log_text("\n".join(splits.skipped) + "\n", "data/skipped_images.txt")


def _train_counts(splits) -> np.ndarray:
    return np.bincount(splits.y_train, minlength=splits.num_classes)


def model_name(config: Config, tags: dict[str, str] | None) -> str:
    """The LoggedModel's name: `<variant>-seed<n>` in a compare (its run has the variant tag;
    MLflow refuses / : . % " ' in the name, they become _), else "model"."""
    variant = (tags or {}).get(VARIANT_TAG)
    if not variant:
        return "model"
    return re.sub(r"[/:.%\"']", "_", f"{variant.rsplit(':', 1)[-1]}-seed{config.seed}")


def _log_model(model, example: np.ndarray, *, drop_proxies: bool, name: str = "model"):
    """The inference model as an MLflow 3 LoggedModel (signature, input example) → its info.

    Logged uncompiled, with Keras built-in layers only (`models.inference_model`): a compiled
    model's file names our loss class, and Keras deserialises only built-in classes unless
    `losses` was imported, so `mlflow.keras.load_model` would fail in a plain Python. The loss
    is in the run's params; the compiled model with optimizer state is the checkpoint.
    """
    model = inference_model(model, drop_proxies=drop_proxies)
    return tracking.log_keras_model(model, example, evaluate.predict(model, example), name=name)


def _backfill_metrics(run_id: str, history: dict[str, list[float]]) -> None:
    """Log epochs the checkpoint has but MLflow lacks (crash between checkpoint and log)."""
    logged = mlflow.MlflowClient().get_metric_history(run_id, "train/loss")
    last_logged = max((m.step for m in logged), default=0)
    for epoch in range(last_logged, len(history.get("train/loss", []))):
        tracking.log_metrics({k: v[epoch] for k, v in history.items()}, step=epoch + 1)


def _print_summary(config: Config, run, test: dict[str, float], wall: float) -> None:
    if test:
        width = max(len(k) for k in test)
        print(f"\n{config.loss} on {config.dataset}: test metrics ({wall:.1f} s)")
        for key, value in test.items():
            print(f"  {key:<{width}}  {value:.4f}")
    print(f"run {run.info.run_id} in experiment {tracking.experiment_name(config)!r}")
    print(f"view it: {tracking.run_url(run)}")


