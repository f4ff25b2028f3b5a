"""The helper process of `aejax.figures.worker`: draws each figure it is handed.

Run by its path (``python -I helper.py``), never imported by the run: it loads
``plots.py`` by its path too, so it imports matplotlib and NumPy and nothing of JAX, Flax or
Orbax, which would cost the run's cores about two seconds at every start. Hence only the standard
library is imported here.
"""

import contextlib
import importlib.util
import io
import os
import pickle
import signal
import sys
from pathlib import Path


def _serve() -> None:
    """Draw each figure read from stdin, answer ``(ok, message)`` on stdout, until stdin ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run's process decides when to stop
    # Lowest CPU priority: the helper draws on cores the run leaves idle, not on the run's own.
    with contextlib.suppress(AttributeError, OSError):
        os.nice(19)
    spec = importlib.util.spec_from_file_location("plots", Path(__file__).with_name("plots.py"))
    drawing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drawing)
    warm_up = drawing.figure(1, 1)  # import matplotlib and load its font now, while the run
    warm_up.text(0.5, 0.5, "0.1")  # is busy elsewhere
    warm_up.savefig(io.BytesIO(), format="png")
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            name, args = pickle.load(requests)
        except EOFError:
            return
        try:
            getattr(drawing, name)(*args)
            answer = (True, "")
        except Exception as err:  # noqa: BLE001 - reported to the run, which raises it
            answer = (False, f"figure {args[1]} failed: {type(err).__name__}: {err}")
        pickle.dump(answer, answers)
        answers.flush()


if __name__ == "__main__":
    _serve()
