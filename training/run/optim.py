"""The optimiser of a run and the papers' fine-tuning protocol: per-variable learning rates
(`head_lr_mult`), weight decay as the papers' optimisers define it (`weight_decay`), and a
warm-up that trains only the head (`warmup_epochs`). `freeze_bn` is a property of the model
(`models.registry.freeze_batchnorm`), applied when it is built.

- `head_lr_mult=m`: the head (classifier, projection) and the class proxies step with m × the
  backbone's rate. Adam normalises each update by its gradient's running RMS, so multiplying
  the head's gradients by m would change nothing; the rate itself is multiplied, per variable,
  inside `update_step` (the rate Keras passes there is the schedule's value at this step).
- `weight_decay=λ`, kept apart from the ridge `l2`: `l2` adds λ‖w‖² on the kernels to the loss
  (its gradient 2λw goes through Adam's normalisation, and the logged loss includes it).
  `weight_decay` is not in the loss and acts on every trained variable, as PyTorch's optimisers
  do, which the papers use: for `sgd` (Cao et al.: SGD, 2e-4) and `adam` it is added to the
  gradient, g ← g + λw, before momentum or moments; for `adamw` (Proxy-Anchor: AdamW, 1e-4)
  it is decoupled, w ← w − lr·λ·w, before the Adam step (Loshchilov & Hutter 2019). Both use
  the variable's own rate, so the head's decay is m × stronger, as in PyTorch's param groups.
- `warmup_epochs=k`: epochs 1..k train the head and the proxies with the backbone frozen
  (`trainable=False`: its weights and BatchNorm statistics do not move), then everything. The
  optimiser is built on every variable first, so its slots and step count are the same in both
  phases and a checkpoint taken in either resumes exactly.

Without `head_lr_mult` or a coupled decay, the optimisers are Keras's own, unchanged.
"""

from __future__ import annotations

import keras
from keras import ops

from models import all_layers, backbone_of, head_variables
from training.config import Config

ADAMW_DECAY = 1e-4  # weight_decay=none with optimizer=adamw (Proxy-Anchor's value)
SGD_MOMENTUM = 0.9  # Nesterov


def weight_decay(config: Config) -> float:
    """λ of the run: `weight_decay`, or its default (adamw 1e-4, else 0)."""
    if config.weight_decay is not None:
        return config.weight_decay
    return ADAMW_DECAY if config.optimizer == "adamw" else 0.0


class PerVariableRate:
    """Mixin for a Keras optimiser: a rate multiple per variable, and weight decay that uses it.

    Args (besides the optimiser's):
        head_lr_mult: multiple of the rate for the variables given to `set_head`.
        coupled_decay: λ added to the gradient as λw (PyTorch SGD/Adam `weight_decay`).
        decoupled_decay: w ← w − rate·λ·w before the step (AdamW).
    """

    def __init__(self, *args, head_lr_mult=1.0, coupled_decay=0.0, decoupled_decay=0.0,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.head_lr_mult = float(head_lr_mult)
        self.coupled_decay = float(coupled_decay)
        self.decoupled_decay = float(decoupled_decay)
        self._head_ids: set[int] = set()
        self._multiples: list[float] = []

    def set_head(self, variables) -> None:
        """The variables that step at `head_lr_mult` × the rate (before `build`)."""
        if self.built:
            raise RuntimeError("set_head must be called before the optimizer is built")
        self._head_ids = {id(v) for v in variables}

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._multiples = [self.head_lr_mult if id(v) in self._head_ids else 1.0
                           for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        multiple = self._multiples[self._get_variable_index(variable)]
        rate = ops.cast(learning_rate, variable.dtype)
        if multiple != 1.0:
            rate = ops.multiply(rate, multiple)
        gradient = ops.cast(gradient, variable.dtype)
        if self.coupled_decay:
            gradient = ops.add(gradient, ops.multiply(variable, self.coupled_decay))
        if self.decoupled_decay:
            self.assign_sub(variable, ops.multiply(variable, ops.multiply(rate,
                                                                          self.decoupled_decay)))
        super().update_step(gradient, variable, rate)

    def get_config(self):
        return {**super().get_config(), "head_lr_mult": self.head_lr_mult,
                "coupled_decay": self.coupled_decay, "decoupled_decay": self.decoupled_decay}


@keras.saving.register_keras_serializable(package="losslab")
class SGD(PerVariableRate, keras.optimizers.SGD):
    """Keras SGD with per-variable rates and PyTorch-style weight decay."""


@keras.saving.register_keras_serializable(package="losslab")
class Adam(PerVariableRate, keras.optimizers.Adam):
    """Keras Adam with per-variable rates and coupled (adam) or decoupled (adamw) decay."""


def build_optimizer(config: Config, steps_per_epoch: int,
                    model: keras.Model | None = None) -> keras.optimizers.Optimizer:
    """The run's optimiser. `model` is needed for `head_lr_mult` != 1 (which variables are the
    head) and `warmup_epochs` > 0 (the optimiser is built on all of them at once)."""
    rate = config.learning_rate
    if config.lr_schedule == "cosine":
        # Decays to 1% of the peak over the whole run; the schedule depends on the optimiser's
        # iteration count, which a checkpoint restores, so a resumed run continues the curve.
        rate = keras.optimizers.schedules.CosineDecay(
            rate, decay_steps=config.epochs * steps_per_epoch, alpha=0.01
        )
    decay, kind = weight_decay(config), config.optimizer
    if config.head_lr_mult == 1.0 and (decay == 0.0 or kind == "adamw"):
        optimizer = {
            "adam": lambda: keras.optimizers.Adam(rate),
            "adamw": lambda: keras.optimizers.AdamW(rate, weight_decay=decay),
            "sgd": lambda: keras.optimizers.SGD(rate, momentum=SGD_MOMENTUM, nesterov=True),
        }[kind]()
    else:
        if model is None:
            raise ValueError("build_optimizer needs the model for head_lr_mult != 1 or "
                             "weight_decay with sgd/adam")
        decays = ({"decoupled_decay": decay} if kind == "adamw" else {"coupled_decay": decay})
        if kind == "sgd":
            optimizer = SGD(rate, momentum=SGD_MOMENTUM, nesterov=True,
                            head_lr_mult=config.head_lr_mult, **decays)
        else:
            optimizer = Adam(rate, head_lr_mult=config.head_lr_mult, **decays)
        optimizer.set_head(head_variables(model))
    if model is not None and config.warmup_epochs:
        optimizer.build(model.trainable_variables)  # every variable, before any is frozen
    return optimizer


class Warmup(keras.callbacks.Callback):
    """Epochs before `epochs` (0-based) train with the backbone frozen; then every layer gets
    its own `trainable` flag back (BatchNorm frozen by `freeze_bn` stays frozen).

    Keras decides what a step trains when it traces the step, so each switch traces a new
    train function (`make_train_function(force=True)`), which `fit` calls from the next step
    on: one retrace per switch, at most two per run.
    """

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self._saved: list | None = None  # (layer, trainable) while frozen

    def on_epoch_begin(self, epoch, logs=None):
        self._freeze(epoch < self.epochs)

    def on_train_end(self, logs=None):
        self._freeze(False)

    def _freeze(self, frozen: bool) -> None:
        if frozen == (self._saved is not None):
            return
        backbone = backbone_of(self.model)
        if frozen:
            self._saved = [(layer, layer.trainable) for layer in [backbone, *all_layers(backbone)]]
            backbone.trainable = False
        else:
            for layer, trainable in self._saved:  # parents before their children
                layer.trainable = trainable
            self._saved = None
        self.model.make_train_function(force=True)


def callbacks(config: Config) -> list[keras.callbacks.Callback]:
    """The protocol's callbacks, first in the trainer's list: the warm-up, if any."""
    return [Warmup(config.warmup_epochs)] if config.warmup_epochs else []
