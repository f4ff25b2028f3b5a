import numpy as np
import pytest

from aejax import figure_worker, plots

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
        assert (tmp_path / "rec.png").stat().st_size > 1000
    assert (tmp_path / "curves.png").stat().st_size > 1000
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
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_without_the_block_figures_are_drawn_at_once(tmp_path):
    plots.save_curves(HISTORY, tmp_path / "curves.png", "curves")
    assert (tmp_path / "curves.png").is_file()
