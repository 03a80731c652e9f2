"""The README's worked example runs and says what it claims."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_worked_example_runs(capsys):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    exec(compile(blocks[0], "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "Monte Carlo check passed: True" in out
    bias = float(re.search(r"bias (\S+)", out).group(1))
    assert bias < 1e-12


def test_readme_commands_present():
    text = README.read_text()
    for marker in ("<!-- main-command -->", "<!-- test-command -->"):
        after = text.split(marker, 1)[1]
        assert after.lstrip().startswith("```bash\npython3 -m venv")
    assert "python -m verify" in text.split("<!-- main-command -->", 1)[1].split("```")[1]
    assert "pytest" in text.split("<!-- test-command -->", 1)[1].split("```")[1]
