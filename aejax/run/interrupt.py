"""Ctrl-C / SIGTERM during training: finish the running epoch, checkpoint it, then stop cleanly.

A whole epoch is one compiled program, so the end of an epoch is the natural safe point. A second
signal while waiting falls back to the default behaviour (immediate KeyboardInterrupt / exit).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from aejax.engine import distributed

HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by a signal handler; read by the training loop at its safe points."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def agreed(self) -> bool:
        """Whether any process of the run was asked to stop; the same answer in each of them, so
        all stop at the same epoch boundary. (One process: whether this one was.)"""
        if distributed.anyone(self.requested) and not self.requested:
            self.signum = signal.SIGTERM  # a peer was stopped: stop with it
        return self.requested


@contextlib.contextmanager
def stop_on_signal() -> Iterator[StopRequest]:
    """Within the block, SIGINT/SIGTERM only set a flag (first time) instead of killing us."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers can only be installed from the main thread
        return
    previous = {signum: signal.getsignal(signum) for signum in HANDLED}

    def handle(signum, frame):
        request.signum = signum
        for s, handler in previous.items():  # a second signal acts immediately
            signal.signal(s, handler)

    for signum in HANDLED:
        signal.signal(signum, handle)
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
