"""Train / val / test splits for classification and retrieval, seeded and stratified
(regression's unstratified rows: ``training.data.regression``).

Order of operations (each step seeded by ``seed``, so a seed gives identical splits):

1. Test: the source's own test split; a source without one (``digits``, an ``idx:`` folder
   with only the ``t10k`` pair) holds out a stratified ``TEST_FRACTION`` of its images.
2. Val: a stratified ``val_fraction`` of what is left (the test set is never touched).
3. ``imbalance`` IR > 1: train keeps ``long_tail_counts`` of each class (class 0 the head,
   a random subset of each class); val follows the same profile with at least one image
   per class, so every class is still measured; test stays as it is.

Retrieval keeps the first ``ceil(C/2)`` classes (mnist: 0–4) for train/val and takes the
test split's images of the other classes (5–9) as the test set: classes never seen in
training. Labels keep their original values in every split (test labels are 5–9, so
``class_names[y]`` always names the class); ``test_label_offset`` is therefore 0.
A protocol's source may fix the class halves (``train_classes``: SOP trains on 11,318) and
pool both of its splits (CUB, Cars196: every image of the held-out classes is a query).

Every step reads labels only: the images are lazy collections (``training.data.images``)
that ``take(indices)`` narrows, so a split of SOP's 120k images costs 120k integers here.
``prepare_splits`` then reads the images once (cache pass) with the model's view.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from training.data import catalog
from training.data.cache import Prepared, choose, prepare
from training.data.images import View
from training.data.regression import split_regression
from training.data.source import Source
from training.data.sources import load_source
from training.errors import DataError

TEST_FRACTION = 0.2
MIN_RETRIEVAL_CLASSES = 4  # two training classes for positives/negatives, two to query


@dataclasses.dataclass(frozen=True)
class Splits:
    """The three splits of one dataset for one task.

    Attributes:
        name: the dataset name as given ("digits", "mnist", "idx:/path").
        task: "classification", "retrieval" or "regression".
        x_*: the split's images (``training.data.images.Images``): ``x[i:j]`` reads float32
            (k, S, S, C) in [0, 1]; ``len(x)``; ``x.shape`` = (N, S, S, C).
        y_*: int32 (N,), original class labels (index into ``class_names``).
        num_classes: classes the model is trained on (retrieval: the first ceil(C/2)).
        class_names: names of all source classes, index = label.
        test_label_offset: original label = y_test + offset; always 0 (labels are kept).
        Regression (``training.data.regression``): y_* float32 targets, num_classes 0;
        w_*: float32 (N,) sample weights or None; a table's x_* are float32 (N, F) feature
        rows named by feature_names, feature_stats their training (mean, variance) for the
        model's Normalization layer; target_stats the training targets' robust (center,
        scale) for the head's Rescaling; dropped_rows (drop_nan) and outlier_rows
        (outliers=).
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]
    test_label_offset: int = 0
    skipped: tuple[str, ...] = ()  # unreadable images skipped (first 20 paths)
    skipped_count: int = 0
    cache: str = "memory"  # where the images live after prepare_splits
    w_train: np.ndarray | None = None
    w_val: np.ndarray | None = None
    w_test: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()
    feature_stats: tuple[np.ndarray, np.ndarray] | None = None
    target_stats: tuple[float, float] | None = None
    dropped_rows: int = 0
    outlier_rows: int = 0

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(S, S, C): the model's input; (F,) for a table's feature rows."""
        return tuple(self.x_train.shape[1:])

    def class_counts(self, split: str) -> np.ndarray:
        """Images per source class in ``split`` ("train"/"val"/"test"): int64 (num names,)."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be one of train, val, test; got {split!r}")
        return np.bincount(getattr(self, f"y_{split}"), minlength=len(self.class_names))


def long_tail_counts(counts_per_class, imbalance: float) -> np.ndarray:
    """Exponential long-tail profile (Cui et al. 2019; Cao et al. 2019).

    Formula: n_c = min(count_c, floor(n_max * IR^(-c/(C-1)))), n_max = max_c count_c.
    Class 0 is the head; the clip to count_c matters only for real data whose head class
    is not the largest.

    Args:
        counts_per_class: int array (C,), images available per class.
        imbalance: IR >= 1, ratio between the head and the tail class; 1 keeps everything.

    Returns:
        int64 array (C,), images to keep per class (may contain 0: the caller decides).

    Example: counts [100]*3, IR=100 -> [100, 10, 1].
    """
    counts = np.asarray(counts_per_class, dtype=np.int64)
    if not (np.isfinite(imbalance) and imbalance >= 1.0):
        raise DataError(f"imbalance must be a finite ratio >= 1 (1 = balanced), got {imbalance!r}")
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any():
        raise DataError(f"counts_per_class must be a non-empty 1-D array of counts, got {counts}")
    num = counts.size
    exponent = np.arange(num) / max(num - 1, 1)
    # +1e-9 so exact products such as 1000 * 100^-0.5 = 100 do not floor to 99.
    target = np.floor(counts.max() * float(imbalance) ** -exponent + 1e-9).astype(np.int64)
    return np.minimum(counts, target)


def _first_non_label(src: Source) -> str:
    """" (e.g. the target -1.0 of training entry 2)": what made a source regression targets."""
    for what, y in (("training", src.y_train), ("test", src.y_test)):
        y = np.asarray(y if y is not None else [], np.float64)
        bad = np.flatnonzero((y < 0) | (y != np.round(y)))
        if bad.size:
            return f" (e.g. the target {y[bad[0]]:g} of {what} entry {bad[0] + 1})"
    return ""


def _stratified_split(y: np.ndarray, fraction: float, seed: int, what: str):
    """Indices (keep, held) with ``fraction`` of every class held out (sorted, int64)."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    lonely = [c for c, n in enumerate(counts) if n == 1]
    if lonely:
        raise DataError(
            f"cannot hold out a stratified {what}: class(es) {lonely} have a single image; "
            "every class needs at least 2"
        )
    try:
        keep, held = train_test_split(
            np.arange(len(y)), test_size=fraction, stratify=y, random_state=seed
        )
    except ValueError as err:  # e.g. fraction * N smaller than the number of classes
        raise DataError(f"cannot hold out a stratified {what} ({fraction=}): {err}") from err
    return np.sort(keep), np.sort(held)


def _subsample(y: np.ndarray, keep_per_class: np.ndarray, rng: np.random.Generator):
    """Sorted indices keeping a random ``keep_per_class[c]`` images of each class c."""
    chosen = [
        rng.choice(np.flatnonzero(y == c), size=int(n), replace=False)
        for c, n in enumerate(keep_per_class)
        if n > 0
    ]
    return np.sort(np.concatenate(chosen))


def _train_val(src_x, src_y, classes: int, names, seed, val_fraction, imbalance):
    """(x_train, y_train, x_val, y_val) for labels in [0, classes), long-tailed if IR > 1."""
    train, val = _stratified_split(src_y, val_fraction, seed, "validation split")
    if imbalance > 1.0:
        rng = np.random.default_rng(seed)
        train_counts = np.bincount(src_y[train], minlength=classes)
        keep = long_tail_counts(train_counts, imbalance)
        empty = np.flatnonzero(keep == 0)
        if empty.size:
            c = int(empty[0])
            raise DataError(
                f"imbalance={imbalance} leaves class {c} ({names[c]!r}) with 0 training "
                f"images (the head class has {train_counts.max()}); use imbalance <= "
                f"{int(train_counts.max())} or a larger dataset"
            )
        train = train[_subsample(src_y[train], keep, rng)]
        val_counts = np.bincount(src_y[val], minlength=classes)
        val_keep = np.maximum(long_tail_counts(val_counts, imbalance), np.minimum(val_counts, 1))
        val = val[_subsample(src_y[val], val_keep, rng)]
    return src_x.take(train), src_y[train], src_x.take(val), src_y[val]


def _protocol_long_tail(src_x, src_y, classes, names, seed, val_fraction, imbalance):
    """A protocol's fixed long tail (Cao et al.): the exponential profile on the *whole*
    training pool (CIFAR-10-LT: 5,000 → 50 per class, 12,406 images), so the training split
    has the published size; val is drawn from the images the profile left out, following the
    same profile scaled by val_fraction (at least one image per class)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(src_y, minlength=classes)
    keep = long_tail_counts(counts, imbalance)
    train = _subsample(src_y, keep, rng)
    rest = np.setdiff1d(np.arange(len(src_y)), train)
    want = np.maximum(np.floor(keep * val_fraction).astype(np.int64), 1)
    available = np.bincount(src_y[rest], minlength=classes)
    val = rest[_subsample(src_y[rest], np.minimum(want, available), rng)]
    return src_x.take(train), src_y[train], src_x.take(val), src_y[val]


def _class_disjoint_val(x, y, classes: int, seed: int, val_fraction: float):
    """Val = every image of a seeded `val_fraction` of the classes (at least 2 classes, so
    a val query has a wrong class to rank below its own)."""
    present = np.flatnonzero(np.bincount(y, minlength=classes))
    held = max(2, round(val_fraction * len(present)))
    if len(present) - held < 2:
        raise DataError(f"retrieval: {len(present)} training classes cannot spare {held} for "
                        f"validation; lower val_fraction={val_fraction}")
    val_classes = np.random.default_rng(seed).choice(present, size=held, replace=False)
    is_val = np.isin(y, val_classes)
    train, val = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    return x.take(train), y[train], x.take(val), y[val]


def _classification(src: Source, name: str, seed: int, val_fraction: float, imbalance: float):
    num = len(src.class_names)
    if src.long_tail is not None:
        if imbalance != 1.0:
            raise DataError(f"dataset {name!r} is already long-tailed at IR {src.long_tail:g} "
                            f"(its protocol); leave imbalance=1, got imbalance={imbalance}")
        parts = _protocol_long_tail(src.x_train, src.y_train, num, src.class_names, seed,
                                    val_fraction, src.long_tail)
    else:
        parts = _train_val(
            src.x_train, src.y_train, num, src.class_names, seed, val_fraction, imbalance
        )
    return Splits(name, "classification", *parts, src.x_test, src.y_test, num, src.class_names)


def _retrieval(src: Source, name: str, seed: int, val_fraction: float, imbalance: float):
    num = len(src.class_names)
    if num < MIN_RETRIEVAL_CLASSES:
        raise DataError(
            f"retrieval needs at least {MIN_RETRIEVAL_CLASSES} classes (half to train, half "
            f"held out to query); dataset {name!r} has {num}"
        )
    train_classes = src.train_classes or math.ceil(num / 2)
    seen = np.flatnonzero(src.y_train < train_classes)
    counts = np.bincount(src.y_train[seen], minlength=train_classes)
    if imbalance == 1.0 and (len(seen) * val_fraction < train_classes or counts.min() < 2):
        # SOP: 59,551 images of 11,318 products, 2 to 12 each: a stratified val cannot hold
        # one image per class, so val holds out whole training classes, as the
        # metric-learning papers' own val splits do.
        parts = _class_disjoint_val(src.x_train.take(seen), src.y_train[seen], train_classes,
                                    seed, val_fraction)
    else:
        parts = _train_val(
        src.x_train.take(seen),
        src.y_train[seen],
        train_classes,
        src.class_names,
        seed,
        val_fraction,
        imbalance,
        )
    unseen = np.flatnonzero(src.y_test >= train_classes)
    return Splits(
        name,
        "retrieval",
        *parts,
        src.x_test.take(unseen),
        src.y_test[unseen],
        train_classes,
        src.class_names,
    )


TASKS: dict[str, Callable[..., Splits]] = {
    "classification": _classification,
    "retrieval": _retrieval,
    "regression": None,  # rows, not classes: training.data.regression.split_regression
}


def load_splits(
    dataset: str,
    task: str,
    *,
    seed: int,
    val_fraction: float = 0.1,
    imbalance: float = 1.0,
    data_dir: str | None = None,
    data_root: str | None = None,
    image_size: int | None = None,
    target: str | None = None,
    weight: str | None = None,
    outliers: float = 0.0,
    drop_nan: bool = False,
) -> Splits:
    """Load ``dataset`` and split it for ``task``; deterministic for a given seed.

    Args:
        dataset: "digits", "idx:PATH" or a TFDS name (see ``available_datasets()``).
        task: "classification" or "retrieval".
        seed: seeds every random choice (test hold-out, val split, long-tail subsets).
        val_fraction: share of the training images held out for validation, in (0, 1).
        imbalance: long-tail ratio IR >= 1 for the training split (1 = as is).
        data_dir: TFDS data folder (default ``$TFDS_DATA_DIR`` or TFDS's own default).
        data_root: the folder ``list:`` paths are relative to.
        image_size: the model's input side, when known (skips the files' size scan).
        target, weight: csv: the target and weight columns.
        outliers: regression: share of training targets given a heavy-tailed shift.
        drop_nan: regression tables: drop rows with NaN/inf instead of stopping.

    Raises:
        DataError: any bad value, file or dataset; the message names it and the choices.
    """
    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    if not (isinstance(val_fraction, (int, float)) and 0.0 < val_fraction < 1.0):
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if not (isinstance(imbalance, (int, float)) and np.isfinite(imbalance) and imbalance >= 1):
        raise DataError(f"imbalance must be a finite ratio >= 1 (1 = balanced), got {imbalance!r}")
    entry = catalog.protocol(dataset)
    if entry is not None and entry.task != task:
        raise DataError(f"dataset={dataset} is a {entry.task} protocol ({entry.citation}); "
                        f"choose a {entry.task} loss, or the plain TFDS name {entry.source!r}")
    by_name = catalog.task_mismatch(dataset, task)  # diabetes, csv:, digits, ...: no loading
    if by_name:
        raise DataError(by_name)
    src = load_source(dataset, data_dir, data_root=data_root, image_size=image_size,
                      target=target, weight=weight)
    kind = {"regression": "regression", "classification": "labels"}.get(src.task)
    mismatch = kind and catalog.task_mismatch(dataset, task, kind)
    if mismatch:  # a list: or your own source, known only now
        raise DataError(mismatch + _first_non_label(src))
    if task != "regression" and src.label_problem:
        raise DataError(src.label_problem)
    if task == "regression":
        fields = split_regression(src, dataset, seed=seed, val_fraction=val_fraction,
                                  test_fraction=TEST_FRACTION, outliers=outliers,
                                  drop_nan=drop_nan)
        return Splits(dataset, task, num_classes=0, class_names=(), **fields)
    if src.x_test is None:
        pool, test = _stratified_split(src.y_train, TEST_FRACTION, seed, "test split")
        src = dataclasses.replace(
            src,
            x_train=src.x_train.take(pool),
            y_train=src.y_train[pool],
            x_test=src.x_train.take(test),
            y_test=src.y_train[test],
        )
    present = np.bincount(src.y_train, minlength=len(src.class_names))
    if (present == 0).any():
        missing = np.flatnonzero(present == 0).tolist()
        raise DataError(f"dataset {dataset!r}: class(es) {missing} have no training images")
    return TASKS[task](src, dataset, seed, val_fraction, imbalance)


DEFAULT_VARIABLE_SIZE = 224  # image_size when the files' sizes vary (the papers' 224)


def prepare_splits(splits: Splits, *, policy: str, image_size: int | None, cache: str,
                   cache_budget: float, cache_folder, skip_bad_images: bool) -> Splits:
    """Give every split the model's view and read its images once (``training.data.cache``):
    into the cache, or only verified with ``cache=none``. A file that does not decode is a
    DataError naming it, or with ``skip_bad_images`` is dropped and counted."""
    size = image_size or splits.x_train.natural or DEFAULT_VARIABLE_SIZE
    views = {"x_train": View(policy, size), "x_val": View(policy, size),
             "x_test": View(policy, size)}
    collections = {k: getattr(splits, k).with_view(v) for k, v in views.items()}
    where = choose(cache, list(collections.values()), cache_budget)
    changes, skipped, count = {}, [], 0
    for key, images in collections.items():
        done: Prepared = prepare(images, where, cache_folder)
        labels = getattr(splits, "y" + key[1:])
        if done.bad.size:
            if not skip_bad_images:
                more = f" and {done.bad.size - 1} more" if done.bad.size > 1 else ""
                raise DataError(
                    f"image {done.bad_names[0]} cannot be read or decoded (corrupt, truncated "
                    f"or not an image){more}; fix or remove it, or pass skip_bad_images=true")
            labels = np.delete(labels, done.bad)
            skipped += list(done.bad_names)
            count += int(done.bad.size)
        changes[key], changes["y" + key[1:]] = done.images, labels
    return dataclasses.replace(splits, **changes, skipped=tuple(skipped[:20]),
                               skipped_count=count, cache=where)

