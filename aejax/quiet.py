"""What a command prints beyond its own lines: warnings as one line each, and nothing of the
noise Orbax's background threads make once an error has ended the run."""

from __future__ import annotations

import logging
import sys
import threading
import warnings


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (e.g. JAX's about an unreadable compile-cache entry) as one line on stderr."""
    text = " ".join(str(message).split())
    print(f"warning: {text}", file=sys.stderr if file is None else file)


def without_closed_loops(hook):
    """`hook` (`sys.unraisablehook`), silent about "Event loop is closed": what TensorStore's
    threads report when a failed Orbax save or restore has closed the loop they call back."""

    def unraisablehook(unraisable) -> None:
        closed = isinstance(unraisable.exc_value, RuntimeError) and (
            str(unraisable.exc_value) == "Event loop is closed"
        )
        if not closed:
            hook(unraisable)

    return unraisablehook


def until_exit() -> None:
    """After the one line of a user error, nothing more: Orbax's background threads and event
    loops, stopped by the error, would print their own tracebacks as the interpreter exits."""
    sys.unraisablehook = lambda unraisable: None
    threading.excepthook = lambda args: None
    # e.g. "coroutine '_read_array_index_and_device_put' was never awaited", of a failed restore
    warnings.simplefilter("ignore")
    for name in ("asyncio", "concurrent.futures"):
        logging.getLogger(name).disabled = True
