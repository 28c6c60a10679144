"""`ProxyHead`: one learned proxy per class, as a Keras layer whose output is cosines (B, C)."""

import numbers

import keras
from keras import ops

# Added to squared norms before the rsqrt, as in the Proxy-Anchor authors' l2_norm: a zero
# vector maps to zero (cosines 0) with a finite gradient instead of 0/0.
_NORM_EPS = 1e-12


def l2_normalize(x, axis=-1):
    """x / ‖x‖ along `axis` in float32; zero vectors stay zero (no NaN, finite gradient)."""
    x = ops.cast(x, "float32")
    return x * ops.rsqrt(ops.sum(ops.square(x), axis=axis, keepdims=True) + _NORM_EPS)


def proxy_initializer():
    """The Proxy-Anchor authors' proxy initialisation, for a (D, C) kernel.

    They draw (C, D) proxies with PyTorch's `kaiming_normal_(mode="fan_out")`, i.e. normal
    with std sqrt(2 / C); on Keras's (D, C) layout that is fan_out = C as well. Only the
    directions matter for the cosines; the norm sets the proxies' effective learning rate
    (the gradient on a normalised direction scales with 1 / ‖p‖).
    """
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


@keras.saving.register_keras_serializable(package="losses")
class ProxyHead(keras.layers.Layer):
    """Cosine similarity of each embedding to C learned class proxies.

    Formula:

    ```
    cosines[i, c] = <x_i / ‖x_i‖, p_c / ‖p_c‖>,   x: (B, D) input,  p: (D, C) weight "proxies"
    ```

    The proxies are a trainable weight of the layer, so `model.fit` trains them with the
    rest of the model; the losses that take `proxy_cosines` (`ArcFaceLoss`, `CosFaceLoss`,
    `ProxyAnchorLoss`) see only the (B, C) cosines. Inputs and proxies are both
    L2-normalised here (normalising the embedding beforehand does no harm). At retrieval
    time, drop the head and use the embedding that feeds it.

    The computation is always float32 and the output is float32: `dtype` defaults to
    "float32" (the Keras advice for a model's last layer under mixed precision) and, with
    any other policy, autocasting is off and inputs and proxies are cast to float32.

    Args:
        num_classes: number of proxies C (the training classes), >= 1.
        initializer: initialiser of the (D, C) proxy weight; default: normal with
            std sqrt(2 / C), the Proxy-Anchor authors' choice (`proxy_initializer()`).
        **kwargs: keyword arguments of `keras.layers.Layer` (name, dtype, trainable).

    Example:

    >>> import numpy as np
    >>> head = ProxyHead(3)
    >>> cosines = head(np.ones((2, 4), "float32"))
    >>> tuple(cosines.shape), keras.backend.standardize_dtype(cosines.dtype)
    ((2, 3), 'float32')
    >>> bool(np.all(np.abs(keras.ops.convert_to_numpy(cosines)) <= 1.0 + 1e-6))
    True

    Reference: Kim et al., "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020
    (proxies and their initialisation); Deng et al., "ArcFace", CVPR 2019 (the normalised
    class-weight head).
    """

    def __init__(self, num_classes, initializer=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(autocast=False, **kwargs)
        integer = isinstance(num_classes, numbers.Integral) and not isinstance(num_classes, bool)
        if not integer or num_classes < 1:
            raise ValueError(f"Invalid num_classes={num_classes!r}: expected an integer >= 1.")
        self.num_classes = int(num_classes)
        self.initializer = keras.initializers.get(initializer or proxy_initializer())

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is None:
            raise ValueError(
                f"ProxyHead needs a known embedding size; got input shape {input_shape}."
            )
        self.proxies = self.add_weight(
            name="proxies",
            shape=(dim, self.num_classes),
            initializer=self.initializer,
            trainable=True,
            autocast=False,  # read in float32 even inside a mixed policy's autocast scope
        )

    def call(self, inputs):
        # (B, D) @ (D, C): one matmul; the proxy norms are C values per step.
        return ops.matmul(l2_normalize(inputs), l2_normalize(self.proxies, axis=0))

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            initializer=keras.initializers.serialize(self.initializer),
        )
        return config
