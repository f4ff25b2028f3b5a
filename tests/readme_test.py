"""The README's library example runs as printed."""

import re
from pathlib import Path

from conftest import REPO


def test_readme_library_example_runs(tmp_path, monkeypatch, capsys):
    readme = (REPO / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    mse, accuracy = map(float, re.search(r"^([\d.]+) ([\d.]+)$", printed, re.M).groups())
    assert mse < 0.15 and accuracy > 0.7
    assert "'count': 10000.0" in printed
    assert Path("runs/nb/finetune/metrics.json").is_file()
