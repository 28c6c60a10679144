"""The data-source catalogue: every way to name a dataset, and the field's benchmark protocols,
as plain data (standard library only: ``--help`` and config validation read it without
TensorFlow). ``training.data.sources`` maps each entry to its loader.
"""

from __future__ import annotations

import dataclasses
import difflib

# Exact names and `prefix:` forms, with the line `--help` shows.
NAMED = {
    "digits": "scikit-learn's bundled 8×8 digits (1,797 images, 10 classes); no network",
    "diabetes": "regression: scikit-learn's bundled diabetes data (442 patients, 10 raw "
                "features, disease progression); no network",
}
PREFIXED = {
    "idx:": "idx:PATH — a folder of MNIST-format IDX files (train-/t10k-images/labels)",
    "folder:": "folder:PATH — one subfolder per class (Keras's image_dataset_from_directory "
               "layout); PATH/train + PATH/test when both exist",
    "list:": "list:TRAIN[,TEST] — text files of `relative/path.jpg <label>` lines, paths "
             "relative to data_root= (the ImageNet-LT / Places-LT / iNaturalist layout); "
             "float labels (`a.jpg 23.5`) make it regression",
    "csv:": "csv:PATH — regression on a table: header line first, target=COLUMN "
            "[weight=COLUMN]; string columns one-hot, numbers standardised in the model",
}
# The task a dataset's targets fix, when its name tells: a regression loss needs one of these,
# a classification or retrieval loss any other (list: and module:function sources with
# integer labels serve both; their targets decide when they are read).
REGRESSION_NAMES = ("diabetes",)
REGRESSION_PREFIXES = ("csv:",)
FLEXIBLE_PREFIXES = ("list:",)


def dataset_task(name: str) -> str | None:
    """"regression" for a table, "labels" for a dataset of class labels, None when only its
    targets can tell (list:, module:function)."""
    if name in REGRESSION_NAMES or name.startswith(REGRESSION_PREFIXES):
        return "regression"
    if name.startswith(FLEXIBLE_PREFIXES) or is_user_source(name):
        return None
    return "labels"


def task_mismatch(name: str, task: str, kind: str | None = None) -> str | None:
    """The message when a `task` loss cannot train on dataset `name` (whose targets are
    `kind`: "regression" or "labels"; None = what its name tells), else None."""
    kind = kind or dataset_task(name)
    if kind == "regression" and task != "regression":
        return (f"dataset={name} is a regression dataset (float or negative targets, not class "
                f"labels 0..C-1) but the loss is a "
                f"{task} loss; a regression dataset needs a regression loss (mse, mae, huber, "
                f"...), a {task} loss needs a dataset of class labels (digits, idx:, ...)")
    if kind == "labels" and task == "regression":
        return (f"dataset={name} holds class labels (a classification dataset) but the loss is "
                "a regression loss; a regression loss needs a regression dataset (diabetes, "
                "csv:PATH target=COLUMN, a list: of float targets), class labels need a "
                "classification loss (ce, focal, ...)")
    return None
TFDS_LINE = ("any TFDS image-classification name (mnist, cifar10, caltech_birds2011, cars196, "
             "food101, oxford_flowers102, imagenet2012, ...), read through tfds.load")
USER_LINE = ("module:function — your own source: function() returns "
             "((train_images, train_labels), (test_images, test_labels) or None, class_names)")


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A benchmark's data protocol, selected by `dataset=<name>`.

    Attributes:
        name: the dataset name users type.
        citation: one line: whose split this is.
        source: the dataset it reads (a TFDS name, or "list" for list files in data_root).
        task: the task its numbers are reported for ("retrieval" or "classification").
        tfds_split: TFDS splits to read as (train, test); a single "train+test" pools both.
        train_classes: retrieval: classes 0..n-1 train, the rest are the queries.
        long_tail: classification: Cao et al.'s exponential profile at this IR, applied to the
            full training split (val comes from the images it leaves out).
        augment: the training augmentation the papers use (`augment=auto`).
        lists: list files (train, test) inside data_root, for source "list".
    """

    name: str
    citation: str
    source: str
    task: str
    tfds_split: tuple[str, ...] = ("train", "test")
    train_classes: int | None = None
    long_tail: float | None = None
    augment: str = "none"
    lists: tuple[str, str] | None = None


PROTOCOLS = {
    p.name: p
    for p in (
        Protocol("cub200", "CUB-200-2011 retrieval, classes 1–100 train / 101–200 test "
                 "(Wah et al. 2011; Musgrave et al. 2020)", "caltech_birds2011", "retrieval",
                 ("train+test",), train_classes=100, augment="resized_crop"),
        Protocol("cars196", "Cars196 retrieval, classes 1–98 train / 99–196 test (Krause et al. "
                 "2013; Musgrave et al. 2020)", "cars196", "retrieval", ("train+test",),
                 train_classes=98, augment="resized_crop"),
        Protocol("sop", "Stanford Online Products retrieval, 11,318 train / 11,316 test "
                 "products (Oh Song et al. 2016)", "stanford_online_products", "retrieval",
                 ("train", "test"), train_classes=11318, augment="resized_crop"),
        Protocol("cifar10_lt", "CIFAR-10-LT, IR 100: 12,406 training images, balanced test "
                 "(Cao et al. 2019)", "cifar10", "classification", long_tail=100.0,
                 augment="crop_flip"),
        Protocol("cifar100_lt", "CIFAR-100-LT, IR 100: 10,847 training images, balanced test "
                 "(Cao et al. 2019)", "cifar100", "classification", long_tail=100.0,
                 augment="crop_flip"),
        Protocol("imagenet_lt", "ImageNet-LT: 115.8k images of 1,000 classes, 1,280 to 5 per "
                 "class (Liu et al. 2019); data_root = the ImageNet folder holding the lists",
                 "list", "classification", augment="resized_crop",
                 lists=("ImageNet_LT_train.txt", "ImageNet_LT_test.txt")),
    )
}


def is_user_source(name: str) -> bool:
    """`package.module:function` that is not one of our prefixes."""
    if any(name.startswith(p) for p in PREFIXED) or ":" not in name:
        return False
    module, _, function = name.partition(":")
    return bool(module) and function.isidentifier() and all(
        part.isidentifier() for part in module.split("."))


def protocol(name: str) -> Protocol | None:
    return PROTOCOLS.get(name)


def help_lines() -> list[str]:
    """What `--help` prints under "datasets"."""
    lines = [f"{name:<14} {doc}" for name, doc in NAMED.items()]
    lines += [f"{prefix + 'PATH':<14} {doc}" for prefix, doc in PREFIXED.items()]
    lines += [f"{'<tfds name>':<14} {TFDS_LINE}", f"{'module:function':<14} {USER_LINE}"]
    lines += ["protocols (the field's benchmark splits):"]
    lines += [f"  {p.name:<12} {p.task}: {p.citation}" for p in PROTOCOLS.values()]
    return lines


def suggestion(name: str, extra: list[str] | tuple[str, ...] = ()) -> str:
    """' Did you mean X?' for a close known name, else ''."""
    known = [*NAMED, *PROTOCOLS, *extra]
    close = difflib.get_close_matches(name, known, n=3)
    return f" Did you mean {', '.join(close)}?" if close else ""
