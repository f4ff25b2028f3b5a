"""Stop requests: a signal ends training at the next epoch boundary, in every process of a run."""

import os
import signal

from aejax.engine import distributed
from aejax.run.interrupt import StopRequest, stop_on_signal


def test_a_signal_sets_the_request_and_a_second_one_acts_at_once():
    with stop_on_signal() as stop:
        assert not stop.requested and not stop.agreed()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signum == signal.SIGTERM and stop.agreed()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the next one is not caught
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_peer_that_was_stopped_stops_this_process_too(monkeypatch):
    # What process 1 sees when process 0 got Ctrl-C: the flags are gathered from all processes.
    monkeypatch.setattr(distributed, "anyone", lambda flag: True)
    stop = StopRequest()
    assert not stop.requested
    assert stop.agreed() and stop.signum == signal.SIGTERM
    monkeypatch.setattr(distributed, "anyone", lambda flag: flag)
    assert not StopRequest().agreed()
