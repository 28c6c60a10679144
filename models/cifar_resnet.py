"""The CIFAR ResNets of He et al. 2016 (§4.2): ResNet-20, -32 and -56, in Keras layers.

A 3×3 conv of 16 filters, then 3 stages of n basic blocks ([3×3 conv–BN–ReLU, 3×3 conv–BN]
+ shortcut, ReLU) with 16, 32 and 64 filters, depth 6n + 2 (n = 3, 5, 9); stages 2 and 3
start with stride 2. Global average pooling gives (B, 64).

Shortcuts are option A: identity, and where a stage halves the map and doubles the width,
the input subsampled by 2 and zero-padded with the new channels, with no parameters. That is
the paper's choice for CIFAR ("so our residual models have exactly the same depth, width,
and number of parameters as the plain counterparts": 0.27 M, 0.46 M, 0.85 M) and the model of
the long-tail papers we compare with (Cao et al. 2019's ResNet-32 pads the same way).
Option B (1×1 projection convs) would add ~12 k parameters and change the numbers those
papers report.

Initialisation He normal, BatchNorm momentum 0.9 (PyTorch's 0.1), as in Cao et al.'s code.
Cost on 32×32×3: ResNet-20 about 41 M multiply-adds per image forward, ResNet-32 69 M,
ResNet-56 125 M. Any input from 8×8 fits (8 → 4 → 2 in stages 2 and 3).
"""

from __future__ import annotations

import keras

from models.trunk import regularizer

WIDTHS = (16, 32, 64)


def _bn(name: str):
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _conv(filters: int, stride: int, reg, name: str):
    return keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                               kernel_initializer="he_normal", kernel_regularizer=reg, name=name)


def _block(x, filters: int, stride: int, reg, name: str):
    h = _conv(filters, stride, reg, f"{name}_conv1")(x)
    h = keras.layers.ReLU(name=f"{name}_relu1")(_bn(f"{name}_bn1")(h))
    h = _bn(f"{name}_bn2")(_conv(filters, 1, reg, f"{name}_conv2")(h))
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        # Option A: every other pixel (a 1×1 pool with stride 2 is x[:, ::2, ::2]), then the
        # new channels as zeros, half on each side (Cao et al.'s F.pad).
        shortcut = keras.layers.MaxPooling2D(1, strides=stride, name=f"{name}_subsample")(x)
        extra = filters - x.shape[-1]
        shortcut = keras.ops.pad(shortcut, [[0, 0], [0, 0], [0, 0],
                                            [extra // 2, extra - extra // 2]])
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")(
        [h, shortcut]))


def cifar_resnet(input_shape, depth: int, *, l2: float = 0.0, pooling: str = "avg",
                 name: str | None = None) -> keras.Model:
    """Images (B, H, W, C) in [0, 1] → features (B, 64).

    Args:
        input_shape: (H, W, C), H and W >= 8.
        depth: 6n + 2 (20, 32, 56, 110, ...).
        l2: ridge penalty λ on every conv kernel; 0 = none.
        pooling: "avg" (the paper's global average pooling) or "flatten".
    """
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"depth must be 6n + 2 (20, 32, 56, ...), got {depth}")
    if pooling not in ("avg", "flatten"):
        raise ValueError(f"pooling must be avg or flatten; got {pooling!r}")
    n = (depth - 2) // 6
    reg = regularizer(l2)
    inputs = keras.Input(tuple(input_shape), name="image")
    h = keras.layers.ReLU(name="stem_relu")(_bn("stem_bn")(_conv(WIDTHS[0], 1, reg, "stem_conv")(
        inputs)))
    for stage, filters in enumerate(WIDTHS, start=1):
        for block in range(1, n + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            h = _block(h, filters, stride, reg, f"stage{stage}_block{block}")
    pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.Flatten
    return keras.Model(inputs, pool(name="pool")(h), name=name or f"resnet{depth}")


def resnet20(input_shape, *, l2: float = 0.0, pooling: str = "avg") -> keras.Model:
    return cifar_resnet(input_shape, 20, l2=l2, pooling=pooling, name="backbone")


def resnet32(input_shape, *, l2: float = 0.0, pooling: str = "avg") -> keras.Model:
    return cifar_resnet(input_shape, 32, l2=l2, pooling=pooling, name="backbone")


def resnet56(input_shape, *, l2: float = 0.0, pooling: str = "avg") -> keras.Model:
    return cifar_resnet(input_shape, 56, l2=l2, pooling=pooling, name="backbone")
