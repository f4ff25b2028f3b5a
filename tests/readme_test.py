"""The README's library example runs as printed, and docs/cli.md's flag tables match the parsers."""

import argparse
import re
from pathlib import Path

import pytest

from aejax import cli
from support import FASHION_DIR, REPO


@pytest.mark.skipif(
    not FASHION_DIR.is_dir(),
    reason=f"the README example loads the full Fashion-MNIST from {FASHION_DIR} (Debian's "
    "dataset-fashion-mnist, installed by scripts/setup.sh)",
)
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


def _documented_flag_tables() -> dict[str, dict[str, str]]:
    """``{script: {flag: default cell}}`` from docs/cli.md: each table row of a flag belongs to
    the scripts its ``### `` heading or "Only `scripts/...`" line names (a ``## `` heading ends
    them)."""
    page = (REPO / "docs" / "cli.md").read_text()
    tables: dict[str, dict[str, str]] = {}
    scripts: list[str] = []
    for line in page.splitlines():
        if line.startswith("## "):
            scripts = []
        elif line.startswith("### ") or line.startswith("Only `scripts/"):
            scripts = re.findall(r"scripts/(\w+)\.py", line)
        elif line.startswith("| `--") and scripts:
            flag_cell, default = (c.strip() for c in line.strip("|").split("|")[:2])
            flag = flag_cell.strip("`").split()[0]
            for script in scripts:
                tables.setdefault(script, {})[flag] = default.strip("`")
    return tables


def _shown_default(action: argparse.Action) -> str:
    if isinstance(action, argparse._StoreTrueAction):
        return "off"
    return "—" if action.default is None else str(action.default)


@pytest.mark.parametrize("script", sorted(cli.PARSERS))
def test_docs_list_every_flag_with_its_default(script):
    documented = _documented_flag_tables().get(script, {})
    parser = cli.PARSERS[script]()
    actual = {
        a.option_strings[-1]: _shown_default(a)
        for a in parser._actions
        if a.option_strings and a.dest != "help"
    }
    assert documented == actual
