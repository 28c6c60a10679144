"""The README's "Use the losses in your own Keras project" snippet runs as written."""

from __future__ import annotations

import re

from conftest import REPO_ROOT


def _section_code(title: str) -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"no python block under '## {title}'"
    return "\n".join(blocks)


def test_readme_loss_snippet_runs(capsys):
    exec(compile(_section_code("Use the losses in your own Keras project"), "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip()
    assert float(printed) >= 0.0


def test_readme_starts_with_the_two_commands():
    head = (REPO_ROOT / "README.md").read_text().splitlines()[:6]
    assert any(line.startswith("make train") for line in head)
    assert any(line.startswith("make test") for line in head)


def test_readme_loss_table_is_the_registry():
    from training.help import replace_loss_table

    text = (REPO_ROOT / "README.md").read_text()
    assert replace_loss_table(text) == text, "run: python -m training.help loss-table --write"


def custom_loss_example() -> str:
    """The README's worked custom-loss module (my_losses.py)."""
    section = (REPO_ROOT / "README.md").read_text().split(
        "## Write your own loss and compare it with ours", 1)[1]
    return re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)[0]


def test_readme_proxy_head_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it saves arcface.keras
    scope = {}
    exec(compile(_section_code("Proxy losses in your own model"), "README.md", "exec"), scope)
    vectors = scope["keras"].ops.convert_to_numpy(scope["vectors"])
    assert vectors.shape == (256, 16) and (tmp_path / "arcface.keras").exists()
    assert abs(float(abs(vectors).sum(axis=1).min())) > 0
    import numpy as np

    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
