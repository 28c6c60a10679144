"""The one `key=value` parser of every command line (train, compare, tune, report,
landscape, workers): the same tokens, the same messages, ConfigError (exit 2) on bad input."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable

from training.errors import ConfigError


def pairs(argv: Iterable[str], valid: Iterable[str] = ()) -> list[tuple[str, str]]:
    """`["a=1", "b-c=x"]` → [("a", "1"), ("b_c", "x")]: the one tokeniser of every command.
    ConfigError for a word without "=" (naming the valid keys when given) and for a key given
    twice (`epochs=1 epochs=2`: which one was meant? Hydra refuses it too)."""
    out: dict[str, str] = {}
    for word in argv:
        key, sep, raw = word.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            listed = f"; valid keys: {', '.join(valid)}" if valid else ""
            raise ConfigError(f"expected key=value, got {word!r}{listed}")
        if key in out:
            raise ConfigError(f"{key} is given twice ({key}={out[key]} and {key}={raw.strip()}); "
                              "give each key once")
        out[key] = raw.strip()
    return list(out.items())


@dataclasses.dataclass(frozen=True)
class Key:
    """One argument of a small command (report, landscape, workers)."""

    name: str
    type: type
    default: typing.Any
    doc: str
    required: bool = False


def parse_keys(argv: Iterable[str], keys: Iterable[Key]) -> dict[str, typing.Any]:
    """`key=value` words → typed dict over `keys`' defaults. ConfigError for an unknown key
    (with a did-you-mean), a value of the wrong type or a missing required key."""
    keys = {k.name: k for k in keys}
    values = {name: key.default for name, key in keys.items()}
    for name, raw in pairs(argv, keys):
        if name not in keys:
            close = difflib.get_close_matches(name, keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown key {name!r}{hint}; valid keys: {', '.join(keys)}")
        try:
            values[name] = keys[name].type(raw)
        except ValueError:
            kind = keys[name].type.__name__
            raise ConfigError(f"{name}={raw!r} is not valid; valid: a value of type {kind}") from None
    for name, key in keys.items():
        if key.required and not values[name]:
            raise ConfigError(f"{name}=<value> is required; valid keys: {', '.join(keys)}")
    return values
