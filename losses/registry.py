"""The loss registry: every loss is described once, here, and everything else reads it.

    losses.get("focal", gamma=1.0)                  # a loss by name
    losses.spec("focal").args                       # its arguments, defaults, valid ranges
    losses.get("my_pkg.my_mod:MyLoss", k=2)         # any keras.losses.Loss by import path

    @losses.register("my_loss", task="classification")
    class MyLoss(keras.losses.Loss): ...            # a user's own loss, taken up like ours

An entry (`LossSpec`) holds the name, task, class, the model output it takes, what it needs
from the training split, its arguments (defaults from the constructor signature, so the two
cannot drift; bounds, choices, docs and the tuning range from the entry) and named presets.
"""

from __future__ import annotations

import importlib
import typing

from .balanced import BalancedCrossentropy
from .contrastive import ContrastiveLoss
from .crossentropy import Crossentropy
from .distances import DISTANCES
from .focal import FocalLoss
from .spec import TASKS, Arg, LossArgError, LossSpec, signature_args, with_overrides
from .triplet import MINING, TripletLoss

_REGISTRY: dict[str, LossSpec] = {}
DEFAULT_OUTPUT = {"classification": "logits", "retrieval": "embedding"}


class UnknownLoss(LossArgError):
    """No such registered loss, or an import path that does not name a Keras loss."""


def add(spec: LossSpec) -> LossSpec:
    """Registers `spec` under its name (a later entry with the same name replaces it)."""
    _REGISTRY[spec.name] = spec
    return spec


def entry(
    name: str,
    cls: type,
    *,
    task: str,
    output: str | None = None,
    needs: str | None = None,
    args: typing.Mapping[str, dict] | None = None,
    summary: str = "",
    reference: str = "",
) -> LossSpec:
    """A `LossSpec` whose arguments come from the constructor (or, with `needs="labels"`,
    `from_labels`) signature, with `args` adding per-argument metadata or trainer-only args."""
    builder = cls.from_labels if needs == "labels" else cls.__init__
    exclude = () if needs == "labels" else ("class_weights", "class_counts", "class_priors")
    derived = signature_args(builder, exclude=exclude)
    return LossSpec(
        name=name,
        cls=cls,
        task=task,
        output=output or DEFAULT_OUTPUT[task],
        needs=needs,
        args=with_overrides(derived, args or {}),
        summary=summary,
        reference=reference,
        import_path=f"{cls.__module__}:{cls.__qualname__}",
    )


def preset(name: str, of: str, summary: str = "", **fixed) -> LossSpec:
    """A named preset of a registered loss with some arguments fixed (`triplet_hard`)."""
    base = _REGISTRY[of]
    for key, value in fixed.items():
        base.arg(key).check(value)
    return LossSpec(
        name=name,
        cls=base.cls,
        task=base.task,
        output=base.output,
        needs=base.needs,
        args=tuple(a for a in base.args if a.name not in fixed),
        summary=summary or base.summary,
        reference=base.reference,
        preset_of=of,
        fixed=tuple(fixed.items()),
        import_path=base.import_path,
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

    Its arguments are the constructor's keywords with scalar defaults; `args` may add
    bounds, choices or a tuning range per argument (see `losses.spec.Arg`).
    """

    def decorate(cls):
        _check_loss_class(cls, name)
        add(entry(name, cls, task=task, output=output, needs=needs, args=args,
                  summary=summary or _first_line(cls.__doc__)))
        return cls

    return decorate


def spec(name: str) -> LossSpec:
    """The entry of a registered name or of a "module:Class" import path.

    Raises:
        UnknownLoss: unknown name (the message lists the known ones), a path that does not
            import, or a class that is no `keras.losses.Loss`.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _from_import_path(name)
    raise UnknownLoss(
        f"unknown loss {name!r}; known losses: {', '.join(names())}, or a "
        "'module:Class' import path of your own keras.losses.Loss"
    )


def specs(task: str | None = None) -> list[LossSpec]:
    """Every registered entry (presets included), in registration order."""
    return [s for s in _REGISTRY.values() if task in (None, s.task)]


def names(task: str | None = None) -> list[str]:
    """Sorted names `get` accepts (import paths aside)."""
    return sorted(s.name for s in specs(task))


def get(name: str, *, labels=None, num_classes=None, **kwargs):
    """A new loss instance by name or import path, keyword arguments to its constructor.

    A loss that needs the training split (`balanced_ce`, ...) is built from `labels=`
    (`from_labels`); without `labels` its constructor is called directly (e.g.
    `get("balanced_ce", class_weights=[1.0, 2.0])`).

    Raises:
        ValueError: unknown name (the message lists the known ones), or an invalid argument.
    """
    entry_ = spec(name)
    if entry_.needs == "labels" and labels is not None:
        return entry_.build(kwargs, labels=labels, num_classes=num_classes)
    return entry_.cls(**{**dict(entry_.fixed), **kwargs})


# --- import paths -----------------------------------------------------------------------


def _from_import_path(path: str) -> LossSpec:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 (any import failure is the user's to see)
        raise UnknownLoss(
            f"loss {path!r}: module {module_name!r} does not import "
            f"({type(exc).__name__}: {exc})"
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
    return entry(path, cls, task=task, summary=_first_line(cls.__doc__))


def _check_loss_class(cls, name: str) -> None:
    import keras  # noqa: PLC0415 (already imported by the loss modules above: no cost)

    if not (isinstance(cls, type) and issubclass(cls, keras.losses.Loss)):
        raise UnknownLoss(f"loss {name!r}: {cls!r} is not a keras.losses.Loss subclass")


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0]


# --- the entries ------------------------------------------------------------------------
# Tuning ranges follow the values the papers sweep; `search=None` means "not tuned".

add(entry("ce", Crossentropy, task="classification", summary="cross entropy, −log p_y",
          args={"ignore_class": {"doc": "label whose samples are masked out", "type": int}}))
add(entry(
    "balanced_ce", BalancedCrossentropy, task="classification", needs="labels",
    summary="−w_y log p_y, w_c ∝ 1/n_c (or Cui et al. effective number with `beta`)",
    args={"beta": {"type": float, "low": 0.0, "high": 1.0, "high_open": True,
                   "doc": "none = inverse frequency; else Cui et al. effective number",
                   "search": ("choice", (None, 0.99, 0.999, 0.9999))}},
))
add(entry(
    "focal", FocalLoss, task="classification",
    summary="−α_y (1 − p_y)^γ log p_y, weight on hard examples (`gamma`, `alpha`)",
    args={"gamma": {"low": 0.0, "doc": "focusing parameter; 0 = cross entropy",
                    "search": ("float", 0.0, 5.0)},
          "alpha": {"type": float, "low": 0.0, "low_open": True,
                    "doc": "scalar class weight (none = 1)"}},
))
add(entry(
    "triplet", TripletLoss, task="retrieval",
    summary="max(d(a,p) − d(a,n) + margin, 0) with `mining` = semi-hard, hard, all",
    args={"margin": {"low": 0.0, "doc": "hinge margin", "search": ("float", 0.05, 0.5)},
          "mining": {"choices": MINING, "doc": "which triplets the batch contributes"},
          "distance": {"choices": DISTANCES, "doc": "embedding distance"},
          "soft": {"doc": "softplus instead of the hinge"}},
))
add(preset("triplet_hard", of="triplet", mining="hard",
           summary="triplet with batch-hard mining (Hermans et al.)"))
add(entry(
    "contrastive", ContrastiveLoss, task="retrieval",
    summary="d² for same-class pairs, max(margin − d, 0)² for others",
    args={"margin": {"low": 0.0, "doc": "margin of different-class pairs",
                     "search": ("float", 0.3, 1.5)},
          "distance": {"choices": DISTANCES, "doc": "embedding distance"}},
))

# --- long-tail losses -------------------------------------------------------------------

# --- metric-learning losses -------------------------------------------------------------


__all__ = ["Arg", "LossArgError", "LossSpec", "UnknownLoss", "add", "entry", "get", "names",
           "preset", "register", "spec", "specs"]
