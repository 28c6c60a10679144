"""What a registry entry says about a loss: `Arg` (one hyperparameter) and `LossSpec` (a loss).

Plain data, standard library only (no Keras): `losses/catalog.py` declares our entries with it,
and `--help` reads them without paying TensorFlow's 6 s import. The trainer, config validation,
the compare and the tuner all read the same entries.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import numbers
import typing

TASKS = ("classification", "retrieval", "regression")
# What the loss consumes from the model, and so which head the trainer builds:
#   logits         (B, C) from a dense classifier head
#   cosine_logits  (B, C) cosines of L2-normalised features and L2-normalised class weights
#   embedding      (B, D) L2-normalised embeddings
#   proxy_cosines  (B, C) cosines of the embedding to learned class proxies (losses.ProxyHead)
# Regression heads are one linear Dense(output_units(spec, args)) layer, no activation; the
# target y_true is (B,) or (B, 1) floats:
#   value          (B, 1) the prediction ŷ itself
#   quantiles      (B, Q) column j predicts the τ_j quantile, τ = the loss's increasing
#                  `quantiles` argument (Q = its length); the median is the τ = 0.5 column
#   mean_logvar    (B, 2) column 0 the mean μ (the point prediction), column 1 log σ², any
#                  real (the loss floors σ² at its `min_variance`)
OUTPUTS = {
    "logits": "classification",
    "cosine_logits": "classification",
    "embedding": "retrieval",
    "proxy_cosines": "retrieval",
    "value": "regression",
    "quantiles": "regression",
    "mean_logvar": "regression",
}
_UNITS = {"value": 1, "mean_logvar": 2}  # "quantiles": one unit per quantile
# What the loss needs from the training split: None, or "labels" (then the trainer builds it
# with `cls.from_labels(train_labels, num_classes=C, **args)`: class counts and priors).
NEEDS = (None, "labels")


class LossArgError(ValueError):
    """A bad loss argument; the message names the loss, the argument and the valid values."""


@dataclasses.dataclass(frozen=True)
class Arg:
    """One hyperparameter of a loss.

    Attributes:
        name: the constructor (or `from_labels`) keyword.
        type: bool, int, float or str.
        default: the value used when none is given (None only if `optional`).
        doc: one line for `--help`.
        choices: the valid values of a str argument.
        low, high: inclusive bounds of a number (None: unbounded); `low_open`/`high_open`
            make them exclusive.
        optional: None is a valid value.
        increasing: for a `tuple` argument (a tuple of floats, each within low/high, given
            as "0.1,0.5,0.9" on the command line): the values must be strictly increasing.
        search: the tuning range, ("float", lo, hi), ("log", lo, hi), ("int", lo, hi) or
            ("choice", (v1, v2, ...)); None: not tuned.
        trainer: read by the trainer, not passed to the loss (e.g. LDAM's `drw`).
    """

    name: str
    type: type
    default: typing.Any
    doc: str = ""
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    search: tuple | None = None
    trainer: bool = False
    increasing: bool = False

    def valid(self) -> str:
        """The valid values in words, e.g. ">= 0" or "one of: hard, all"."""
        if self.choices:
            text = "one of: " + ", ".join(map(str, self.choices))
        elif self.type is bool:
            text = "true or false"
        else:
            parts = []
            if self.low is not None:
                parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
            if self.high is not None:
                parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
            bounds = " and ".join(parts) or "any"
            text = bounds + (" integer" if self.type is int else " number")
            if self.type is tuple:
                order = ", strictly increasing" if self.increasing else ""
                text = f"comma-separated numbers, each {bounds}{order} (e.g. 0.1,0.5,0.9)"
        return text + (", or none" if self.optional else "")

    def show(self, value: typing.Any) -> str:
        """`value` as the command line writes it: "0.1,0.5,0.9" for a tuple, else str()."""
        if isinstance(value, (tuple, list)):
            return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        return "none" if value is None else str(value)

    def parse(self, raw: str) -> typing.Any:
        """A command-line string → a checked value. No eval: bool/int/float/str and `none`."""
        text = raw.strip()
        if self.optional and text.lower() in ("none", "null", ""):
            return None
        try:
            if self.type is tuple:  # "0.1,0.5,0.9"; brackets too, as str() of a logged tuple
                items = [t for t in text.strip("()[] ").replace(" ", "").split(",") if t]
                value = tuple(float(t) for t in items)
            elif self.type is bool:
                if text.lower() in ("1", "true", "yes", "on"):
                    value = True
                elif text.lower() in ("0", "false", "no", "off"):
                    value = False
                else:
                    raise ValueError
            else:
                value = self.type(text)
        except ValueError:
            raise LossArgError(f"{self.name}={raw!r} is not valid; valid: {self.valid()}") from None
        return self.check(value)

    def check(self, value: typing.Any) -> typing.Any:
        """Returns `value` (ints widened to float for float args) or raises LossArgError."""
        if value is None:
            if self.optional:
                return None
            raise LossArgError(f"{self.name}=None is not valid; valid: {self.valid()}")
        if self.type is tuple:
            return self._check_tuple(value)
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        wrong_bool = isinstance(value, bool) and self.type is not bool
        if wrong_bool or not isinstance(value, self.type):
            raise LossArgError(
                f"{self.name}={value!r} has the wrong type; expected {self.type.__name__}"
            )
        ok = not self.choices or value in self.choices
        if not (ok and (self.type not in (int, float) or self.valid_number(value))):
            raise LossArgError(f"{self.name}={value!r} is out of range; valid: {self.valid()}")
        return value

    def valid_number(self, value: float) -> bool:
        """Whether `value` is finite and within low/high."""
        ok = math.isfinite(value)
        if self.low is not None:
            ok = ok and (value > self.low if self.low_open else value >= self.low)
        if self.high is not None:
            ok = ok and (value < self.high if self.high_open else value <= self.high)
        return ok

    def _check_tuple(self, value: typing.Any) -> tuple[float, ...]:
        """A sequence of numbers (list, tuple, 1-D array) → a tuple of floats, each checked
        against low/high (and strictly increasing if `increasing`); LossArgError names it."""
        def bad(why: str) -> LossArgError:
            return LossArgError(f"{self.name}={self.show(items)} {why}; valid: {self.valid()}")

        given = value.tolist() if hasattr(value, "tolist") else value  # a NumPy array
        if not (isinstance(given, (tuple, list)) and given and all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) for v in given)):
            raise LossArgError(f"{self.name}={value!r} is not a non-empty list of numbers; valid: "
                               f"{self.valid()}")
        items = tuple(float(v) for v in given)
        for item in items:
            if not self.valid_number(item):
                raise bad(f"has {item:g} out of range")
        if self.increasing:
            for before, after in zip(items[:-1], items[1:], strict=True):
                if after == before:
                    raise bad(f"repeats {after:g}")
                if after < before:
                    raise bad(f"is not sorted ({before:g} before {after:g})")
        return items

    def describe(self) -> str:
        """`--help` line: "gamma: float, default 2.0; >= 0 number. Focusing parameter"."""
        default = self.show(self.default)
        doc = f". {self.doc}" if self.doc else ""
        return f"{self.name}: {self.type.__name__}, default {default}; {self.valid()}{doc}"


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """Everything about one loss name.

    Attributes:
        target: the `keras.losses.Loss` subclass, or its "module:QualName" import path
            (imported on first use, so the catalogue needs no Keras).
        preset_of: for a named preset (`triplet_hard`), the loss it fixes arguments of.
        fixed: (name, value) pairs a preset sets; they are not arguments of the preset.
        in_compare: part of `make compare`'s default variants.
    """

    name: str
    target: typing.Any
    task: str
    output: str
    args: tuple[Arg, ...]
    needs: str | None = None
    summary: str = ""
    reference: str = ""
    preset_of: str | None = None
    fixed: tuple[tuple[str, typing.Any], ...] = ()
    in_compare: bool = True
    trainer_fixed: tuple[str, ...] = ()  # names in `fixed` that are trainer-only arguments

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"loss {self.name!r}: task={self.task!r}; valid: {', '.join(TASKS)}")
        if self.output not in OUTPUTS or OUTPUTS[self.output] != self.task:
            valid = [o for o, t in OUTPUTS.items() if t == self.task]
            raise ValueError(
                f"loss {self.name!r}: output={self.output!r}; valid for {self.task}: "
                f"{', '.join(valid)}"
            )
        if self.needs not in NEEDS:
            raise ValueError(f"loss {self.name!r}: needs={self.needs!r}; valid: None, 'labels'")

    @property
    def import_path(self) -> str:
        """"module:QualName" of the class: recorded on every run, so resume finds it again."""
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"

    @property
    def cls(self) -> type:
        """The loss class (imports its module the first time)."""
        if not isinstance(self.target, str):
            return self.target
        module, _, qualname = self.target.partition(":")
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj

    @property
    def trainer_args(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args if a.trainer)

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args)

    def arg(self, name: str) -> Arg:
        for arg in self.args:
            if arg.name == name:
                return arg
        raise LossArgError(self.unknown_arg_message(name))

    def unknown_arg_message(self, key: str) -> str:
        takes = ", ".join(self.arg_names) or "no arguments"
        return f"unknown key {key!r}: not a config key, and {self.name} takes {takes}"

    def resolve(self, given: typing.Mapping[str, typing.Any]) -> dict[str, typing.Any]:
        """Checked values of every argument: `given` over the defaults. Raises LossArgError."""
        values = {a.name: a.default for a in self.args}
        for key, value in given.items():
            values[key] = self.arg(key).check(value)
        return values

    def settings(self, given: typing.Mapping[str, typing.Any]) -> dict[str, typing.Any]:
        """`resolve(given)` plus the values a preset fixes: everything that defines the run."""
        return {**self.resolve(given), **dict(self.fixed)}

    def constructor_kwargs(self, given: typing.Mapping[str, typing.Any]) -> dict[str, typing.Any]:
        """`settings(given)` without the trainer-only arguments."""
        trainer = set(self.trainer_args) | set(self.trainer_fixed)
        return {k: v for k, v in self.settings(given).items() if k not in trainer}

    def build(self, args=None, *, labels=None, num_classes=None):
        """A new loss: `args` checked and completed, preset values applied, trainer-only
        arguments dropped; `from_labels(labels, num_classes)` when the loss needs labels."""
        kwargs = self.constructor_kwargs(args or {})
        if self.needs == "labels":
            if labels is None:
                raise LossArgError(f"{self.name} is built from the training labels (labels=)")
            return self.cls.from_labels(labels, num_classes=num_classes, **kwargs)
        return self.cls(**kwargs)

    def search_space(self) -> dict[str, tuple]:
        """name → search range of every tuned argument."""
        return {a.name: a.search for a in self.args if a.search is not None}


def output_units(spec: LossSpec, loss_args: typing.Mapping | None = None) -> int | None:
    """Width of a regression head for `spec` with `loss_args` (checked over the defaults):
    1 for "value", 2 for "mean_logvar", len(quantiles) for "quantiles"; None for the others
    (the class count or the embedding size, which the trainer chooses)."""
    if spec.output == "quantiles":
        return len(spec.settings(loss_args or {})["quantiles"])
    return _UNITS.get(spec.output)
