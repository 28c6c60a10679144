"""The second stage of a classification run (`stage2=`): the classifier re-balanced on the
frozen trunk, after training, in the same MLflow run (Kang et al., ICLR 2020; Alshammari et
al., CVPR 2022).

- `tau_norm`: w_c ← w_c / ‖w_c‖^τ, bias dropped, τ ∈ {0, 0.1, …, 2} chosen on val.
- `crt`: the dense classifier re-initialised (seeded) and retrained with plain cross entropy
  for `stage2_epochs` on class-balanced batches (q = 0).
- `lws`: trunk and classifier frozen; one scale f_c per class is learned with class-balanced
  batches: logits f ⊙ (x W + b) (Kang et al.'s LWS scales the layer's output).
- `weight_balancing`: the trained classifier fine-tuned with inverse-frequency class weights,
  the run's ridge `l2` and a MaxNorm constraint ‖w_c‖ ≤ δ (projected after every step);
  δ ∈ {¼, ½, ¾, 1} × the largest trained ‖w_c‖, chosen on val.

A cosine head (LDAM-DRW's: cos(x, w_c), the loss scales it by s) takes `crt` (a new cosine
classifier, seeded like the model's, trained with cross entropy on s·cos) and `lws` (logits
f_c·cos, folded into built-in layers: UnitNormalization + Dense(no bias) whose kernel is
f_c·w_c/‖w_c‖, as the logged model has it). τ-norm and MaxNorm would leave its
unit-normalised class weights unchanged, so the config refuses them.

The trunk is frozen, so the stage trains on its features, computed once (inference mode: no
augmentation, BatchNorm statistics as trained) for train and val: seconds, and the trunk stays
bit-identical by construction. Each stage-2 epoch is a pure function of (seed, E + k) like the
training epochs (`training.data.samplers`), and the stage starts from the weights at the end
of training; so a run interrupted inside stage 2 resumes from its last training checkpoint and
replays the stage exactly (its curve points are then logged again at their steps).

Logged: `train/stage2/loss` and `val/stage2/<metric>` at steps E + 1 … E + stage2_epochs,
`stage2/tau` or `stage2/maxnorm` (what was chosen), and the trainer logs `test/stage2/<metric>`
beside `test/<metric>`. The stage-2 model (built-in Keras layers: the LWS scales are folded
into the dense layer) is the run's logged model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np

from losses import ProxyHead
from models.export import inference_model
from training.config import Config
from training.data.samplers import epoch_indices
from training.metrics.long_tail import choose_tau, tau_normalized_kernel
from training.run import evaluate, tracking

DONE = "stage2.done"  # in the checkpoint folder once the stage has finished
MAXNORM_FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # weight_balancing: δ over the largest ‖w_c‖
# A linear head on fixed features takes a larger step than the whole network: the stage's
# peak rate is this multiple of `learning_rate` (on digits IR 10, 5 epochs: cRT reached
# 0.72 balanced accuracy at 1×, far below the model it replaces).
LR_MULT = 10.0


@dataclasses.dataclass
class StageTwo:
    """The stage's outcome: the full stage-2 model and a line for the run's description."""

    model: keras.Model
    note: str

    def test_scores(self, loss_fn, splits) -> dict[str, float]:
        """The stage-2 model's test metrics (keys without the `test/stage2/` prefix)."""
        counts = np.bincount(splits.y_train, minlength=splits.num_classes)
        scores, _, _ = evaluate.classification_scores(
            self.model, loss_fn, splits.x_test, splits.y_test, splits.num_classes, counts,
            tau_from=(splits.x_val, splits.y_val))
        return scores


def pending_epochs(config: Config, folder: Path | None) -> int:
    """1 while a stage 2 is configured and not finished (resume accepts a run whose training
    epochs are all done), else 0."""
    if config.stage2 == "none":
        return 0
    return 0 if folder is not None and (Path(folder) / DONE).is_file() else 1


def run(config: Config, model: keras.Model, loss_fn, splits, folder: Path,
        step: int) -> StageTwo | None:
    """Runs `config.stage2` on the trained `model` (left unchanged) → StageTwo, or None.

    Args:
        step: the last training epoch's step; stage-2 epoch k is logged at step + k.
    """
    if config.stage2 == "none":
        return None
    pair, kernel, bias = _classifier(config, model)
    cosine = bias is None
    scale = float(getattr(loss_fn, "scale", 1.0))  # LDAM's s: the probabilities are softmax(s·z)
    counts = np.bincount(splits.y_train, minlength=splits.num_classes)
    f_val = evaluate.features_and_logits(pair, splits.x_val)[0]
    if config.stage2 == "tau_norm":
        tau, _ = choose_tau(f_val, splits.y_val, kernel)
        tracking.log_metrics({"stage2/tau": tau}, step=step)
        weights = (tau_normalized_kernel(kernel, tau).astype(np.float32), np.zeros_like(bias))
        note = f"τ-normalised classifier, τ = {tau:g} chosen on val"
    else:
        f_train = evaluate.features_and_logits(pair, splits.x_train)[0]
        data = (f_train, splits.y_train, f_val, splits.y_val, counts)
        if config.stage2 == "weight_balancing":
            weights, delta = _weight_balancing(config, kernel, bias, data, loss_fn, step)
            tracking.log_metrics({"stage2/maxnorm": delta}, step=step)
            note = (f"weight balancing: MaxNorm δ = {delta:.4g} (chosen on val), "
                    f"{config.stage2_epochs} epochs on the frozen trunk")
        else:
            if config.stage2 == "crt":
                head = (cosine_crt_head if cosine else crt_head)(
                    kernel.shape[0], kernel.shape[1], config.seed)
            else:
                head = cosine_lws_head(kernel) if cosine else lws_head(kernel, bias)
            _fit_head(config, head, data, loss_fn, step, class_weights=None, q=0.0, log=True,
                      scale=scale)
            weights = folded_weights(head)
            note = {"crt": "classifier re-trained (cRT)",
                    "lws": "learnable weight scaling (LWS)"}[config.stage2]
            note += (f"{' of the cosine head' if cosine else ''}, {config.stage2_epochs} "
                     "epochs on the frozen trunk, class-balanced batches")
    (Path(folder) / DONE).parent.mkdir(parents=True, exist_ok=True)
    (Path(folder) / DONE).write_text(config.stage2 + "\n")
    staged = with_cosine_head(model, *weights) if cosine else with_head(model, *weights)
    return StageTwo(staged, f"The logged model is the stage-2 model: {note}.")


def _classifier(config: Config, model: keras.Model):
    """(images → (features, logits) model, kernel (F, C), bias (C,), or None for a cosine
    head, whose kernel is then its (unnormalised) class weights)."""
    last = model.layers[-1]
    if not isinstance(last, (keras.layers.Dense, ProxyHead)):
        raise ValueError(f"stage2={config.stage2} needs a model that ends in a Dense layer or a "
                         f"cosine head; {config.model}'s last layer is {type(last).__name__}")
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    pair = keras.Model(inputs, [last.input, last.output])
    kernel = np.asarray(keras.ops.convert_to_numpy(last.weights[0]), np.float32)
    if isinstance(last, ProxyHead):
        return pair, kernel, None
    return pair, kernel, np.asarray(keras.ops.convert_to_numpy(last.bias), np.float32)


# --- heads trained on features -----------------------------------------------------------


@keras.saving.register_keras_serializable(package="losslab_stage2")
class ClassScale(keras.layers.Layer):
    """Logits × f, one learned scale f_c per class (LWS), initialised to 1."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, logits):
        return logits * self.scale


def crt_head(features: int, classes: int, seed: int) -> keras.Model:
    """features (B, F) → logits: a fresh dense layer (Glorot uniform, seeded; bias 0)."""
    inputs = keras.Input((features,))
    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Model(inputs, keras.layers.Dense(classes, kernel_initializer=init,
                                                  name="logits")(inputs))


def cosine_crt_head(features: int, classes: int, seed: int) -> keras.Model:
    """features (B, F) → cosines (B, C) to fresh class weights (the model's cosine-head
    initialiser, seeded)."""
    inputs = keras.Input((features,))
    init = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal", seed=seed)
    return keras.Model(inputs, ProxyHead(classes, initializer=init, name="logits")(inputs))


def cosine_lws_head(proxies: np.ndarray) -> keras.Model:
    """features → f ⊙ cos(x, w): the trained cosine head frozen, the scales f trainable."""
    inputs = keras.Input((proxies.shape[0],))
    cosine = ProxyHead(proxies.shape[1], trainable=False, name="logits")
    head = keras.Model(inputs, ClassScale(name="scale")(cosine(inputs)))
    cosine.set_weights([proxies])
    return head


def lws_head(kernel: np.ndarray, bias: np.ndarray) -> keras.Model:
    """features → f ⊙ (x W + b): the trained dense layer frozen, the scales f trainable."""
    inputs = keras.Input((kernel.shape[0],))
    dense = keras.layers.Dense(kernel.shape[1], trainable=False, name="logits")
    logits = ClassScale(name="scale")(dense(inputs))
    head = keras.Model(inputs, logits)
    dense.set_weights([kernel, bias])
    return head


def folded_weights(head: keras.Model) -> tuple[np.ndarray, ...]:
    """(kernel, bias) of one dense layer equal to the head: W·diag(f), b ⊙ f for LWS. A cosine
    head: (its class weights, the LWS scales f or None), for `with_cosine_head`."""
    layer = head.get_layer("logits")
    scales = [s.get_weights()[0] for s in head.layers if isinstance(s, ClassScale)]
    if isinstance(layer, ProxyHead):
        return layer.get_weights()[0], (scales[0] if scales else None)
    kernel, bias = layer.get_weights()
    if scales:
        return kernel * scales[0][None, :], bias * scales[0]
    return kernel, bias


def _fit_head(config, head, data, loss_fn, step, *, class_weights, q, log, scale=1.0) -> float:
    """Trains `head` for `stage2_epochs` on (features, labels) batches drawn with p_c ∝ n_c^q,
    plain cross entropy on scale·logits (times `class_weights[y]` when given), Adam at
    LR_MULT × the run's rate with a cosine decay to 1 % → val balanced accuracy; with `log`,
    the curves at steps step + 1, …"""
    f_train, y_train, f_val, y_val, counts = data
    steps = -(-len(y_train) // config.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        LR_MULT * config.learning_rate, decay_steps=config.stage2_epochs * steps, alpha=0.01)
    head.compile(optimizer=keras.optimizers.Adam(schedule), loss=_cross_entropy(scale),
                 jit_compile=False)
    score = 0.0
    for k in range(config.stage2_epochs):
        order = epoch_indices(y_train, q, config.seed, step + k)  # pure in (seed, epoch)
        losses = []
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            weights = None if class_weights is None else class_weights[y_train[batch]]
            losses.append(float(head.train_on_batch(f_train[batch], y_train[batch],
                                                    sample_weight=weights)))
        val, _, _ = evaluate.classification_scores(head, loss_fn, f_val, y_val,
                                                   len(counts), counts)
        score = val["balanced_accuracy"]
        if log:
            metrics = {"train/stage2/loss": float(np.mean(losses)),
                       **{f"val/stage2/{key}": v for key, v in val.items()}}
            tracking.log_metrics(metrics, step=step + k + 1, beat=True)
    return score


def _cross_entropy(scale: float):
    """Cross entropy of softmax(scale · logits): a cosine head's cosines lie in [−1, 1], and
    unscaled their softmax stays near uniform (Wang et al., NormFace 2017)."""
    if scale == 1.0:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def scaled(y, logits):
        return keras.losses.sparse_categorical_crossentropy(y, logits * scale, from_logits=True)

    return scaled


def _weight_balancing(config, kernel, bias, data, loss_fn, step):
    """Fine-tunes the trained classifier under MaxNorm δ for each candidate δ; → the weights
    of the δ with the best val balanced accuracy (the first on ties), and δ. Only the chosen
    δ's curves are logged (each candidate is replayed: training is deterministic)."""
    counts = data[4]
    scale = float(getattr(loss_fn, "scale", 1.0))
    class_weights = (len(counts) / counts / np.sum(1.0 / counts)).astype(np.float32)
    largest = float(np.linalg.norm(kernel, axis=0).max())
    best = (-1.0, None)
    for fraction in MAXNORM_FRACTIONS:
        score = _fit_head(config, _maxnorm_head(config, kernel, bias, fraction * largest),
                          data, loss_fn, step, class_weights=class_weights, q=1.0, log=False,
                          scale=scale)
        if score > best[0]:
            best = (score, fraction * largest)
    head = _maxnorm_head(config, kernel, bias, best[1])
    _fit_head(config, head, data, loss_fn, step, class_weights=class_weights, q=1.0, log=True,
              scale=scale)
    return folded_weights(head), best[1]


def _maxnorm_head(config, kernel, bias, delta) -> keras.Model:
    inputs = keras.Input((kernel.shape[0],))
    dense = keras.layers.Dense(
        kernel.shape[1], name="logits",
        kernel_regularizer=keras.regularizers.L2(config.l2) if config.l2 else None,
        kernel_constraint=keras.constraints.MaxNorm(delta, axis=0))
    head = keras.Model(inputs, dense(inputs))
    dense.set_weights([kernel, bias])
    return head


# --- the full stage-2 model --------------------------------------------------------------


def with_head(model: keras.Model, kernel: np.ndarray, bias: np.ndarray) -> keras.Model:
    """A copy of `model` (every weight as trained) whose dense classifier holds (kernel, bias)."""
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    copy.layers[-1].set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])
    return copy


def with_cosine_head(model: keras.Model, proxies: np.ndarray,
                     scales: np.ndarray | None) -> keras.Model:
    """A copy of `model` whose cosine head holds `proxies`; with LWS `scales`, in built-in
    layers (UnitNormalization + Dense(no bias), kernel f_c · w_c/‖w_c‖: logits f_c·cos)."""
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    copy.layers[-1].set_weights([np.asarray(proxies, np.float32)])
    if scales is None:
        return copy
    built = inference_model(copy, drop_proxies=False)
    dense = built.layers[-1]
    dense.set_weights([dense.get_weights()[0] * np.asarray(scales, np.float32)[None, :]])
    return built
