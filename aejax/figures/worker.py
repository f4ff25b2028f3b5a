"""A stage's figures drawn by a helper process, off the run's critical path.

Importing matplotlib and drawing are single-threaded Python: in the run's own process they add
about a second to every run. Inside `drawing_aside`, `aejax.figures.plots` hands each figure (its
data, pickled) to a helper process started at the beginning: the helper imports matplotlib while the
run traces and loads its programs, and draws while the run goes on. Leaving the block waits for
every figure; one that failed raises there, as it would have in-process. Without the block (the
library's default), figures are drawn in the calling process.

The helper is `aejax.figures.helper`, run by its path: it never imports the `aejax` package, so
never JAX. It ignores Ctrl-C and ends when the run's process closes its end of the pipe, however
that ends.
"""

from __future__ import annotations

import contextlib
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from aejax.errors import UserError
from aejax.figures import plots

HELPER = Path(__file__).with_name("helper.py").resolve()  # run by path: no aejax import


class FigureError(UserError):
    """A figure the helper process could not draw."""


class FigureWorker:
    """The helper process and the figures handed to it, answered in the order they were sent."""

    def __init__(self):
        command = [sys.executable, "-I", str(HELPER)]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._sent: list[str] = []  # the path of each figure handed over, in order
        self._answered = 0
        self._failures: list[str] = []

    def draw(self, name: str, *args) -> None:
        """Hand over ``plots.<name>(*args)`` (its second argument is the figure's path); drawn
        here instead if the helper has gone."""
        try:
            pickle.dump((name, args), self._process.stdin)
            self._process.stdin.flush()
        except OSError:  # the helper died (killed, out of memory): the run still gets its figure
            getattr(plots, name)(*args)
            return
        self._sent.append(str(args[1]))

    def wait(self, path=None) -> None:
        """Block until figure `path` (None: every figure sent) is drawn; raise on a failure."""
        sent = [*self._sent]
        if path is not None:
            if str(path) not in sent:
                return  # never asked for (or drawn here)
            sent = sent[: len(sent) - sent[::-1].index(str(path))]
        while self._answered < len(sent):
            try:
                ok, message = pickle.load(self._process.stdout)
                self._answered += 1
            except (EOFError, OSError, pickle.UnpicklingError):
                ok, message = False, f"the figure process ended before drawing {sent[-1]}"
                self._answered = len(self._sent)  # nothing more will be answered
            if not ok:
                self._failures.append(message)
        if self._failures:
            raise FigureError(self._failures.pop(0))

    def close(self) -> None:
        """End the helper: at once if every figure is drawn, else once it has drawn them."""
        if self._answered == len(self._sent):
            # Nothing left to draw: do not wait for its interpreter to tear matplotlib down.
            self._process.kill()
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        self._process.wait()


@contextlib.contextmanager
def drawing_aside(enabled: bool = True) -> Iterator[None]:
    """Within the block, `aejax.figures.plots` draws in a helper process (if `enabled`)."""
    if not enabled or plots.handed_aside():
        yield
        return
    worker = FigureWorker()
    try:
        with plots.drawn_by(worker):
            yield
            worker.wait()
    finally:
        worker.close()
