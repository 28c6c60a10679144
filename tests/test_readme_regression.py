"""The README's "Regression losses in your own model" snippet runs as written: each loss
trains its head, whose width the registry gives."""

from __future__ import annotations

import re

from conftest import REPO_ROOT


def test_readme_regression_snippet_runs(capsys):
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Regression losses in your own model", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.split("\n")
    assert printed[:3] == ["huber (2, 1)", "pinball (2, 3)", "gaussian_nll (2, 2)"]
