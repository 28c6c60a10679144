"""The shared convolutional trunk of ``small_cnn`` and ``embedding_net``.

Three blocks of [3×3 conv → BatchNorm → ReLU] × 2 with widths (32, 64, 128). A block
ends with 2×2 max-pooling only while the feature map is at least 4×4, so the same trunk fits
8×8 digits (8→4→2→2), 28×28 MNIST (28→14→7→3) and 32×32 CIFAR (32→16→8→4). Global average
pooling then gives a fixed (B, 128) feature vector whatever the input size (the
classifier); ``pooling="flatten"`` keeps the last map's layout instead (the embedding net).

Cost on 28×28×1: about 29 M multiply-adds per image forward; 0.29 M parameters.
"""

from __future__ import annotations

import keras

WIDTHS = (32, 64, 128)
MIN_POOL_SIZE = 4  # pool a map only if it is at least this large (keeps >= 2×2)


def check_input_shape(input_shape) -> tuple[int, int, int]:
    """(H, W, C) with H, W >= 8 and C >= 1, else ValueError naming the shape."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or min(shape[:2]) < 8 or shape[2] < 1:
        raise ValueError(
            f"input_shape must be (height, width, channels) with height, width >= 8 and "
            f"channels >= 1 (e.g. (8, 8, 1), (28, 28, 1), (32, 32, 3)); got {input_shape!r}"
        )
    return shape


def regularizer(l2: float):
    """``keras.regularizers.L2(l2)`` (adds l2·‖w‖² to the loss) or None when l2 == 0."""
    if not (isinstance(l2, (int, float)) and l2 >= 0):
        raise ValueError(f"l2 must be a number >= 0, got {l2!r}")
    return keras.regularizers.L2(l2) if l2 > 0 else None


# How the last feature map (B, h, w, F) becomes a vector.
POOLINGS = {
    "avg": lambda: keras.layers.GlobalAveragePooling2D(name="gap"),  # (B, F)
    "flatten": lambda: keras.layers.Flatten(name="flatten"),  # (B, h·w·F), keeps layout
}


def conv_trunk(
    input_shape, *, l2: float = 0.0, widths=WIDTHS, pooling: str = "avg", name: str = "trunk"
) -> keras.Model:
    """Images (B, H, W, C) in [0, 1] → features (B, F) or (B, h·w·F).

    Args:
        input_shape: (H, W, C), H and W >= 8.
        l2: ridge penalty λ on every conv kernel (λ‖w‖² added to the loss); 0 = none.
        widths: filters per block; one block per entry.
        pooling: "avg" (global average, F = widths[-1] features) or "flatten" (keeps where
            in the image a feature fired, which matters for classes never trained on).
        name: model name.

    Returns:
        A functional ``keras.Model``.
    """
    height, width, channels = check_input_shape(input_shape)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
    reg = regularizer(l2)
    inputs = keras.Input((height, width, channels), name="image")
    h = inputs
    size = min(height, width)
    for block, filters in enumerate(widths, start=1):
        for conv in (1, 2):
            h = keras.layers.Conv2D(
                filters,
                3,
                padding="same",
                use_bias=False,
                kernel_regularizer=reg,
                name=f"block{block}_conv{conv}",
            )(h)
            # momentum 0.9, not Keras's 0.99: digits has ~20 steps per epoch, and 0.99 leaves
            # the moving statistics near their initial values for hundreds of steps, so
            # inference-mode accuracy sits at chance while training accuracy is 100 %.
            h = keras.layers.BatchNormalization(momentum=0.9, name=f"block{block}_bn{conv}")(h)
            h = keras.layers.ReLU(name=f"block{block}_relu{conv}")(h)
        if size >= MIN_POOL_SIZE:
            h = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(h)
            size //= 2
    outputs = POOLINGS[pooling]()(h)
    return keras.Model(inputs, outputs, name=name)


def small_cnn_backbone(input_shape, *, l2: float = 0.0, pooling: str = "avg") -> keras.Model:
    """The registry's builder of `small_cnn` (`models/catalog.py`): the trunk above."""
    return conv_trunk(input_shape, l2=l2, pooling=pooling)
