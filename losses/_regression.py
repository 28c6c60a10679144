"""What the regression losses share: targets and predictions as float32 columns, and their
arguments checked by their catalogue entry, so a bad value raises the same `LossArgError`
(naming the value and the valid range) from `HuberLoss(delta=-1)` as from `delta=-1` on the
command line."""

from keras import ops

from .catalog import find


def columns(y_true, y_pred):
    """(y, ŷ) float32, (B,) inputs made (B, 1) columns: targets (B,) or (B, K) against
    predictions (B,) or (B, K). Both (B, K) after this; the loss is a mean over K."""
    y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
    if len(y_true.shape) == 1:
        y_true = y_true[:, None]
    if len(y_pred.shape) == 1:
        y_pred = y_pred[:, None]
    return y_true, y_pred


def target_column(y_true):
    """(B, 1) float32 targets from (B,) or (B, 1): broadcast against a (B, Q) head."""
    return ops.reshape(ops.cast(y_true, "float32"), (-1, 1))


def checked(loss: str, **values):
    """`values` checked by the catalogue entry `loss` (floats widened, tuples normalised), in
    the order given. Raises LossArgError naming the value and the valid range."""
    entry = find(loss)
    return [entry.arg(key).check(value) for key, value in values.items()]


def check_width(name: str, y_pred, want: int) -> None:
    """ValueError when the head's static width is not the `want` units the loss reads."""
    width = y_pred.shape[-1]
    if width is not None and width != want:
        raise ValueError(f"{name} reads {want} output columns per sample; the model gives "
                         f"{width} (y_pred shape {tuple(y_pred.shape)})")
