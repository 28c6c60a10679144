"""`--help` texts, read from the typed config and the loss registry (no Keras imported).

Every key is listed with its type, default, valid choices and one line of documentation; a
loss named on the line (`loss=focal --help`) also lists its own arguments.
"""

from __future__ import annotations

import dataclasses
import typing

from training.config import Config, config_fields
from training.loss_catalog import catalog, import_plugins, loss_spec

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
