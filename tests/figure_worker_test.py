import subprocess
import sys

import numpy as np
import pytest

from aejax.figures import plots
from aejax.figures import worker as figure_worker
from support import drawn

HISTORY = [
    {"epoch": e, "train_loss": 1.0 / e, "test_loss": 1.2 / e, "test_accuracy": 0.5 + e / 10}
    for e in (1, 2, 3)
]


def test_figures_drawn_aside_are_written_when_the_block_ends(tmp_path):
    images = np.linspace(-1, 1, 4 * 784, dtype=np.float32).reshape(4, 784)
    with figure_worker.drawing_aside():
        helper = plots._aside._process
        plots.save_curves(HISTORY, tmp_path / "curves.png", "curves")
        plots.save_reconstructions(images, -images, tmp_path / "rec.png", "reconstructions")
        plots.wait_for_figures(tmp_path / "rec.png")
        assert drawn(tmp_path / "rec.png")
    assert drawn(tmp_path / "curves.png")
    assert helper.poll() is not None and plots._aside is None  # the helper has ended


def test_a_figure_that_fails_aside_raises_when_waited_for(tmp_path):
    with pytest.raises(figure_worker.FigureError, match=r"bad\.png failed: IndexError"):
        with figure_worker.drawing_aside():
            plots.save_curves([], tmp_path / "bad.png", "no epochs")
            plots.save_curves(HISTORY, tmp_path / "good.png", "curves")
    assert (tmp_path / "good.png").is_file()  # the helper went on after the failure


def test_figures_are_drawn_here_once_the_helper_is_gone(tmp_path):
    with figure_worker.drawing_aside():
        plots._aside._process.kill()
        plots._aside._process.wait()
        plots.save_curves(HISTORY, tmp_path / "curves.png", "curves")
    assert drawn(tmp_path / "curves.png")


def test_without_the_block_figures_are_drawn_at_once(tmp_path):
    plots.save_curves(HISTORY, tmp_path / "curves.png", "curves")
    assert (tmp_path / "curves.png").is_file()


def test_the_helper_imports_matplotlib_but_never_jax():
    # The helper starts with every run and shares its cores: importing the aejax package (JAX,
    # Flax, Orbax) there would cost the run's first epoch about two seconds of CPU.
    started = subprocess.run(
        [sys.executable, "-I", "-X", "importtime", str(figure_worker.HELPER)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in started.stderr.splitlines()}
    assert "matplotlib" in imported  # it did warm up
    assert not imported & {"jax", "aejax", "flax", "orbax.checkpoint"}
