"""`--help` texts, read from the typed config and the loss registry (no Keras imported).

Every key is listed with its type, default, valid choices and one line of documentation; a
loss named on the line (`loss=focal --help`) also lists its own arguments.
"""

from __future__ import annotations

import dataclasses
import typing

from training.config import Config, config_fields
from training.data import catalog as data_catalog
from training.loss_catalog import catalog, import_plugins, loss_spec
from training.model_catalog import model_lines

WIDTH = 22


def _type_name(annotation) -> str:
    if isinstance(annotation, str):
        return annotation.replace(" | None", " or none")
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    name = (args[0] if args else annotation).__name__
    return name + (" or none" if type(None) in typing.get_args(annotation) else "")


def _line(name: str, kind: str, default, doc: str, choices=()) -> str:
    default = "none" if default is None else default
    valid = f" [{' | '.join(map(str, choices))}]" if choices else ""
    return f"  {name:<{WIDTH}} {kind}, default {default}{valid}. {doc}"


def config_lines(skip: typing.Iterable[str] = ()) -> list[str]:
    hints = typing.get_type_hints(Config)
    lines = []
    for f in config_fields():
        if f.name in skip or f.name == "loss_args":
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        choices = f.metadata.get("choices", ())
        if f.name == "loss":
            choices = ()
        lines.append(_line(f.name, _type_name(hints[f.name]), default, f.metadata.get("doc", ""),
                           choices))
    return lines


def loss_lines() -> list[str]:
    lines = []
    for spec in catalog().specs():
        args = ", ".join(spec.arg_names) or "no arguments"
        lines.append(f"  {spec.name:<{WIDTH}} {spec.task}: {spec.summary} ({args})")
    return lines


def loss_arg_lines(name: str) -> list[str]:
    spec = loss_spec(name)
    head = f"Arguments of loss {spec.name} (key=value or loss.key=value):"
    if spec.preset_of:
        fixed = ", ".join(f"{k}={v}" for k, v in spec.fixed)
        head = f"{head[:-1]}; a preset of {spec.preset_of} with {fixed}:"
    body = [f"  {a.describe()}" for a in spec.args] or ["  (none)"]
    return [head, *body]


# What the model keys do together (one place: `--help` of train and compare).
PROTOCOL_HELP = [
    "Backbones take images in [0, 1] (grayscale is tiled to 3 channels where a model wants",
    "RGB); params exclude the head. pretrained=imagenet reads Keras's weight file from",
    "$KERAS_HOME/models (default ~/.keras/models), downloading it where a network exists;",
    "pretrained=PATH a .weights.h5/.keras file of the same backbone. embedding_dim=none is",
    "the model's default: none (the trunk map) on small_cnn, 128 on every other backbone.",
    "l2 vs weight_decay: l2=λ adds λ‖w‖² on the kernels to the loss (logged in train/loss;",
    "its gradient 2λw goes through Adam's scaling). weight_decay=λ is not in the loss and",
    "acts on every trained variable as PyTorch's optimisers do: sgd and adam add λw to the",
    "gradient, adamw shrinks w by lr·λ·w each step (decoupled). head_lr_mult multiplies",
    "the rate of the head and class proxies, per variable (Adam ignores gradient scale);",
    "warmup_epochs trains only the head and proxies first; freeze_bn keeps BatchNorm's",
    "statistics and scale/offset as loaded.",
]


def _named(argv: list[str], key: str) -> str | None:
    for word in argv:
        k, sep, v = word.partition("=")
        if sep and k.strip().replace("-", "_") == key:
            return v.strip()
    return None


def train_help(argv: list[str]) -> str:
    import_plugins(_named(argv, "plugins"))
    loss = _named(argv, "loss") or Config.loss
    return "\n".join([
        "usage: python -m training.train [key=value ...]      (make train ARGS=\"key=value ...\")",
        "",
        "Config keys:",
        *config_lines(),
        "",
        "Losses (loss=NAME, or loss=module:Class for your own keras.losses.Loss):",
        *loss_lines(),
        "",
        *loss_arg_lines(loss),
        "",
        "Datasets (dataset=NAME):",
        *(f"  {line}" for line in data_catalog.help_lines()),
        "",
        "Models (model=NAME, or model=module:function returning your own keras.Model):",
        *model_lines(WIDTH),
        "",
        *PROTOCOL_HELP,
        "",
        "Exit codes: 0 done, 1 failed during training, 2 bad input (nothing started), "
        "130/143 interrupted.",
    ])


def compare_help(argv: list[str], own_keys: list[tuple[str, str, typing.Any, str]]) -> str:
    import_plugins(_named(argv, "plugins"))
    own = [_line(name, kind, default, doc) for name, kind, default, doc in own_keys]
    return "\n".join([
        "usage: python -m training.compare [key=value ...]    (make compare LOSSES=ce,focal)",
        "",
        "Compare keys:",
        *own,
        "",
        "Shared keys, applied to every run alike (loss, seed, run_name and resume are set per",
        "run); a loss argument applies to every compared loss that takes it:",
        *config_lines(skip=("loss", "seed", "run_name", "resume", "epochs", "imbalance",
                            "landscape", "experiment", "dataset")),
        "",
        "Losses (losses=a,b,...):",
        *loss_lines(),
    ])


def keys_help(usage: str, keys) -> str:
    """Help of a small command from its `cli.Key`s."""
    lines = [_line(k.name, k.type.__name__, k.default, k.doc + (" (required)" if k.required
                                                                    else "")) for k in keys]
    return "\n".join([usage, "", "Keys:", *lines])


# --- the README's table of losses ------------------------------------------------------
TABLE_BEGIN = "<!-- loss table: generated by `python -m training.help loss-table`; do not edit -->"
TABLE_END = "<!-- end of loss table -->"
OUTPUT_WORDS = {"logits": "logits", "cosine_logits": "cosine logits (cosine head)",
                "embedding": "L2-normalised embedding", "proxy_cosines": "cosines to class proxies",
                "value": "one value ŷ", "quantiles": "one value per quantile",
                "mean_logvar": "mean and log-variance"}


def loss_table() -> str:
    """The README's table of losses, one row per registry entry (presets included)."""
    rows = ["| loss (`LOSS=`) | task | takes | arguments (defaults) | what it optimises |",
            "|---|---|---|---|---|"]
    for spec in catalog().specs():
        args = ", ".join(f"`{a.name}={a.show(a.default)}`" for a in spec.args) or "—"
        if spec.preset_of:
            fixed = ", ".join(f"{k}={v}" for k, v in spec.fixed)
            args = f"{args}; preset of `{spec.preset_of}` with {fixed}"
        rows.append(f"| `{spec.name}` | {spec.task} | {OUTPUT_WORDS[spec.output]} | {args} "
                    f"| {spec.summary} |")
    return "\n".join([TABLE_BEGIN, *rows, TABLE_END])


def replace_loss_table(readme: str) -> str:
    """`readme` with its generated block replaced by today's `loss_table()`."""
    head, _, rest = readme.partition(TABLE_BEGIN)
    _, _, tail = rest.partition(TABLE_END)
    if not rest:
        raise ValueError(f"README has no {TABLE_BEGIN!r} block")
    return head + loss_table() + tail


def main(argv: list[str]) -> int:
    """`python -m training.help loss-table [--write README.md]`."""
    if argv[:1] != ["loss-table"]:
        print("usage: python -m training.help loss-table [--write README.md]")
        return 2
    if argv[1:2] == ["--write"]:
        path = argv[2] if len(argv) > 2 else "README.md"
        with open(path, encoding="utf-8") as handle:
            text = replace_loss_table(handle.read())
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return 0
    print(loss_table())
    return 0


if __name__ == "__main__":
    import sys  # noqa: PLC0415 (only as a script)

    sys.exit(main(sys.argv[1:]))
