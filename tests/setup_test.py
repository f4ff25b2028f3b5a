"""scripts/setup.sh returns at once when nothing changed, and reinstalls when something did.

Runs the real script in a scratch copy of the repository whose .venv/bin/python only records how
it is called (pip does nothing there), so no package is installed or touched.
"""

import os
import shutil
import subprocess
import sys
import time

import pytest

from support import FASHION_DIR, REPO

FAKE_PYTHON = f"""#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../calls.log"
if [ "$1" = "-c" ]; then exec {sys.executable} -c "$2"; fi
exit 0
"""

pytestmark = pytest.mark.skipif(
    not FASHION_DIR.is_dir() and shutil.which("apt-get") is not None,
    reason="setup.sh would install Debian's dataset-fashion-mnist first",
)


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def _setup(repo, *args) -> tuple[list[str], float]:
    """Run setup.sh; the pip calls it made, and how long it took."""
    log = repo / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    done = subprocess.run(["bash", "scripts/setup.sh", *args], cwd=repo, env=env, text=True,
                          capture_output=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    return [c for c in calls if c.startswith("-m pip")], time.perf_counter() - started


def test_unchanged_setup_skips_pip_and_a_changed_pyproject_reinstalls(repo):
    installs, _ = _setup(repo)
    assert any("install" in c and "-e .[dev]" in c for c in installs)
    again, seconds = _setup(repo)
    assert again == [] and seconds < 1.0
    with (repo / "pyproject.toml").open("a") as f:
        f.write("\n# changed\n")
    assert _setup(repo)[0]


def test_torch_is_installed_when_first_asked_for(repo):
    _setup(repo)
    with_torch, _ = _setup(repo, "--with-torch")
    assert any("torch==" in c for c in with_torch)
    assert _setup(repo)[0] == [] and _setup(repo, "--with-torch")[0] == []
