"""docs/api.md is true: its Python blocks run, in order, in one namespace, in a fresh folder."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_every_example_in_the_api_page_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 7, "docs/api.md lost its examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, code in enumerate(blocks, 1):
        exec(compile(code, f"docs/api.md block {number}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "--fit must be one of tile, resize, crop" in out and "missing.vtw: no such file" in out
    assert "{'encode': {'quality': 9, 'refine': 10, 'trim': {'start': 0.0, 'frames': 8}}}" in out  # as the page says
    assert {p.name for p in tmp_path.iterdir()} == {"sample.vtw", "frames.mp4", "frames.vtw", "swapped.vtw"}
