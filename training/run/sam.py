"""SAM and ASAM: a training step that descends with the gradient taken at the worst nearby point.

SAM (Foret et al., ICLR 2021, arXiv:2010.01412), per step with batch loss ``L``:

    g = ∇L(w);  ε = ρ · g / ‖g‖;  w ← optimiser step with ∇L(w + ε)

ASAM (Kwon et al., ICML 2021, arXiv:2102.11600) measures the ball in the scaled norm
``‖ε / T_w‖`` with ``T_w = |w| + η`` (element-wise, η = 0.01), which gives
``ε = ρ · T_w² g / ‖T_w g‖``; ``ρ`` is then relative (ASAM uses 0.5 to 2 where SAM uses 0.05).

How: ``use_sam`` replaces the model's ``train_step`` (Keras's customisation point for ``fit``)
on the instance, not its class: the model of any registry entry keeps its architecture, weight
files and saved form, and SAM adds no state, so checkpoints and exact resume are untouched.
The first pass at ``w`` is Keras's own (it updates BatchNorm statistics, the dropout RNG, the
loss and the metrics); the pass at ``w + ε`` is stateless (``stateless_call``,
``stateless_compute_loss``): its BatchNorm updates are dropped and the weights are never
assigned, so nothing needs undoing. Cost: two forward/backward passes per step.

Distributed (``strategy=mirrored``): each replica perturbs with *its own* gradient (its share
of the batch), as the paper's m-sharpness does with m = the per-replica batch; only the
descent gradient is all-reduced, by the optimiser. Mixed precision: the loss is scaled as
Keras does; a step whose first gradient overflows is not perturbed (ε = 0), and the loss-scale
optimiser then skips it as usual.
"""

from __future__ import annotations

import types

import keras
import tensorflow as tf

ASAM_ETA = 0.01  # Kwon et al.'s η


def perturbation(gradients, weights, rho: float, *, adaptive: bool = False,
                 eta: float = ASAM_ETA) -> list[tf.Tensor]:
    """``ε = ρ · T² g / ‖T g‖`` (``T = |w| + η`` when adaptive, else 1), as a list per variable.

    A zero or non-finite gradient gives ``ε = 0``.
    """
    scaled = [tf.abs(w) + eta if adaptive else None for w in weights]
    tg = [g if s is None else s * g for g, s in zip(gradients, scaled, strict=True)]
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in tg]))
    usable = tf.logical_and(tf.math.is_finite(norm), norm > 0)
    factor = tf.where(usable, rho / tf.where(usable, norm, 1.0), 0.0)
    # tf.where, not factor · t: 0 · inf is NaN, and a NaN ε would poison the second pass.
    return [tf.where(usable, tf.cast(factor, t.dtype) * (t if s is None else s * t),
                     tf.zeros_like(t))
            for t, s in zip(tg, scaled, strict=True)]


def _sam_train_step(self, data, *, rho: float, adaptive: bool, eta: float):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    trainable = self.trainable_variables
    # --- at w: Keras's own pass (BatchNorm statistics, RNG, loss tracker, metrics) -------
    with tf.GradientTape() as tape:
        y_pred = self(x, training=True)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                 training=True)
        scaled_loss = self.optimizer.scale_loss(loss)
    gradients = tape.gradient(scaled_loss, trainable,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync  # compute_loss divides by it
    batch = tf.shape(tf.nest.flatten(x)[0])[0]
    next(m for m in self.metrics if m.name == "loss").update_state(loss * replicas,
                                                                    sample_weight=batch)
    # --- at w + ε, stateless: the weights are not assigned, its state updates dropped ------
    weights = [tf.convert_to_tensor(v.value) for v in trainable]
    epsilon = perturbation(gradients, weights, rho, adaptive=adaptive, eta=eta)
    perturbed = [w + e for w, e in zip(weights, epsilon, strict=True)]
    frozen = [v.value for v in self.non_trainable_variables]
    metric_values = [v.value for v in self.metrics_variables]
    with tf.GradientTape() as tape:
        tape.watch(perturbed)
        y_far, _ = self.stateless_call(perturbed, frozen, x, training=True)
        far_loss, _ = self.stateless_compute_loss(perturbed, frozen, metric_values, x=x, y=y,
                                                  y_pred=y_far, sample_weight=sample_weight,
                                                  training=True)
        scaled_far = self.optimizer.scale_loss(far_loss)
    descent = tape.gradient(scaled_far, perturbed,
                            unconnected_gradients=tf.UnconnectedGradients.ZERO)
    self.optimizer.apply_gradients(zip(descent, trainable, strict=True))
    return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def use_sam(model: keras.Model, rho: float, *, adaptive: bool = False,
            eta: float = ASAM_ETA) -> keras.Model:
    """Make ``model.fit`` take SAM (or ASAM) steps with radius ``rho``; returns ``model``.

    Call before ``compile`` or after: the step is looked up when ``fit`` builds its function.
    TensorFlow backend only.
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"SAM here needs the TensorFlow backend, got {keras.backend.backend()}")
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")

    def train_step(self, data):
        return _sam_train_step(self, data, rho=rho, adaptive=adaptive, eta=eta)

    model.train_step = types.MethodType(train_step, model)
    return model


def sam_from_config(model: keras.Model, config) -> keras.Model:
    """The trainer's hook: SAM/ASAM when ``config.sam_rho > 0``, else the model unchanged."""
    if config.sam_rho > 0:
        use_sam(model, config.sam_rho, adaptive=config.sam_adaptive)
    return model
