"""A loss is described once: no module but the catalogue lists loss names or loss choices.

Walks every Python module of the project (not the tests) and fails on any list, tuple, set or
dict literal that holds two or more registered loss names, or two or more valid values of one
loss argument (e.g. the triplet `mining` choices). Those belong in `losses/catalog.py`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import losses

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("losses", "models", "training", "benchmarks")
ALLOWED = {ROOT / "losses" / "catalog.py"}


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path not in ALLOWED:
                yield path


def _vocabularies() -> list[tuple[str, set[str]]]:
    vocab = [("loss names", set(losses.names()))]
    for spec in losses.specs():
        for arg in spec.args:
            if len(arg.choices) >= 2:
                vocab.append((f"{spec.name}.{arg.name} choices", set(map(str, arg.choices))))
    return vocab


def _strings(node) -> list[str]:
    items = node.keys if isinstance(node, ast.Dict) else node.elts
    return [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]


def offending_literals(source: str, vocabularies) -> list[tuple[int, str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
            strings = _strings(node)
            for what, words in vocabularies:
                hits = sorted({s for s in strings if s in words})
                if len(hits) >= 2:
                    found.append((node.lineno, what, hits))
    return found


def test_the_checker_finds_a_second_list():
    vocab = _vocabularies()
    assert offending_literals('TASKS = {"ce": "classification", "focal": "classification"}', vocab)
    assert offending_literals('MINING = ("semi-hard", "hard", "all")', vocab)
    assert not offending_literals('x = ("ce", "train/loss")', vocab)


@pytest.mark.parametrize("path", list(_modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_but_the_catalogue_lists_losses_or_their_choices(path):
    found = offending_literals(path.read_text(), _vocabularies())
    assert not found, [f"{path.relative_to(ROOT)}:{line}: {what} {hits}" for line, what, hits in found]
