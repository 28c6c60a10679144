"""Losses by name: `losses.get`, `losses.spec`, and `losses.register` for a user's own loss.

    losses.get("focal", gamma=1.0)                  # a loss by name
    losses.spec("focal").args                       # its arguments, defaults, valid ranges
    losses.get("my_pkg.my_mod:MyLoss", k=2)         # any keras.losses.Loss by import path

    @losses.register("my_loss", task="classification")
    class MyLoss(keras.losses.Loss): ...            # a user's own loss, taken up like ours

The entries themselves are in `losses/catalog.py` (one per loss, no Keras needed to read them).
A user's loss gets its arguments from its constructor signature: every keyword with a scalar
default (bool, int, float, str, or None typed by its annotation).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing

import keras

from .catalog import UnknownLoss, add, find, names, specs, unknown
from .spec import TASKS, Arg, LossSpec

DEFAULT_OUTPUT = {"classification": "logits", "retrieval": "embedding"}
# Constructor parameters that are never hyperparameters of a run.
NOT_ARGS = ("self", "reduction", "name", "dtype", "from_logits", "labels", "num_classes")
SCALAR_TYPES = (bool, int, float, str)


def entry(
    name: str,
    cls: type,
    *,
    task: str,
    output: str | None = None,
    needs: str | None = None,
    args: typing.Mapping[str, dict] | None = None,
    summary: str = "",
    in_compare: bool = True,
) -> LossSpec:
    """A `LossSpec` whose arguments come from the constructor (with `needs="labels"`, from
    `from_labels`) signature; `args` adds per-argument metadata or trainer-only arguments."""
    builder = cls.from_labels if needs == "labels" else cls.__init__
    exclude = () if needs == "labels" else ("class_weights", "class_counts", "class_priors")
    return LossSpec(
        name=name, target=cls, task=task, output=output or DEFAULT_OUTPUT.get(task, "logits"),
        needs=needs, args=with_overrides(signature_args(builder, exclude=exclude), args or {}),
        summary=summary or _first_line(cls.__doc__), in_compare=in_compare,
    )


def register(
    name: str,
    *,
    task: str = "classification",
    output: str | None = None,
    needs: str | None = None,
    args: typing.Mapping[str, dict] | None = None,
    summary: str = "",
):
    """Class decorator: registers a user's `keras.losses.Loss` subclass under `name`.

    `args` may add bounds, choices, a doc line or a tuning range per argument, e.g.
    `args={"k": {"low": 0, "search": ("float", 0.0, 2.0)}}` (see `losses.spec.Arg`).
    """

    def decorate(cls):
        _check_loss_class(cls, name)
        add(entry(name, cls, task=task, output=output, needs=needs, args=args, summary=summary))
        return cls

    return decorate


def spec(name: str) -> LossSpec:
    """The entry of a registered name or of a "module:Class" import path.

    Raises:
        UnknownLoss: unknown name (the message lists the known ones), a path that does not
            import, or a class that is no `keras.losses.Loss`.
    """
    found = find(name)
    if found is not None:
        return found
    if ":" in name:
        return _from_import_path(name)
    raise unknown(name)


def get(name: str, *, labels=None, num_classes=None, **kwargs):
    """A new loss instance by name or import path, keyword arguments to its constructor.

    A loss built from the training split (`balanced_ce`, ...) takes `labels=` (and
    `num_classes=`) and is made by its `from_labels`; without `labels` its constructor is
    called directly (e.g. `get("balanced_ce", class_weights=[1.0, 2.0])`).

    Raises:
        ValueError: unknown name (the message lists the known ones), or an invalid argument.
    """
    entry_ = spec(name)
    if entry_.needs == "labels" and labels is not None:
        return entry_.build(kwargs, labels=labels, num_classes=num_classes)
    fixed = {k: v for k, v in entry_.fixed if k not in entry_.trainer_fixed}
    return entry_.cls(**{**fixed, **kwargs})


def _from_import_path(path: str) -> LossSpec:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 (any import failure is the user's to see)
        raise UnknownLoss(
            f"loss {path!r}: module {module_name!r} does not import ({type(exc).__name__}: {exc})"
        ) from None
    cls = module
    for part in attr.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            raise UnknownLoss(f"loss {path!r}: module {module_name!r} has no attribute {attr!r}")
    _check_loss_class(cls, path)
    task = getattr(cls, "task", "classification")
    if task not in TASKS:
        raise UnknownLoss(f"loss {path!r}: its task={task!r}; valid: {', '.join(TASKS)}")
    found = entry(path, cls, task=task)
    return dataclasses.replace(found, target=path)  # runs record the path they were given


def _check_loss_class(cls, name: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, keras.losses.Loss)):
        raise UnknownLoss(f"loss {name!r}: {cls!r} is not a keras.losses.Loss subclass")


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0]


def signature_args(fn, exclude: typing.Iterable[str] = ()) -> list[Arg]:
    """Args from a constructor's signature: every keyword with a scalar default (or None, then
    typed by its annotation, else str). Parameters without a default are data, not arguments."""
    skip = set(NOT_ARGS) | set(exclude)
    args = []
    for param in inspect.signature(fn).parameters.values():
        if param.name in skip or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is inspect.Parameter.empty:
            continue
        default = param.default
        if default is None:
            kind = _annotated_scalar(param.annotation)
            args.append(Arg(param.name, kind or str, None, optional=True))
        elif isinstance(default, SCALAR_TYPES):
            args.append(Arg(param.name, type(default), default))
    return args


def _annotated_scalar(annotation) -> type | None:
    if isinstance(annotation, str):
        names = {t.__name__: t for t in SCALAR_TYPES}
        return next((names[n] for n in names if n in annotation), None)
    candidates = typing.get_args(annotation) or (annotation,)
    return next((t for t in candidates if t in SCALAR_TYPES), None)


def with_overrides(args: list[Arg], overrides: typing.Mapping[str, dict]) -> tuple[Arg, ...]:
    """`args` with per-name metadata (doc, bounds, choices, search) replaced; an override
    naming no argument is an error, so an entry cannot drift from its constructor."""
    by_name = {a.name: a for a in args}
    for name in overrides:
        if name not in by_name and not overrides[name].get("trainer"):
            raise ValueError(f"override for {name!r}, which the constructor does not take")
    out = []
    for arg in args:
        out.append(dataclasses.replace(arg, **overrides.get(arg.name, {})))
    for name, extra in overrides.items():
        if name not in by_name:  # trainer-only arguments are declared in full
            out.append(Arg(name=name, **extra))
    return tuple(out)


# Our entries (the long-tail and metric-learning blocks included) are in losses/catalog.py:
# add a new loss there as a `LossSpec(...)` with its class's import path as `target`.

__all__ = ["UnknownLoss", "entry", "get", "names", "register", "spec", "specs"]
