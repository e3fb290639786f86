"""The stop signal's handler runs between two bytecodes of whatever the main thread is doing,
also in the middle of a log record being written: it must not write through ``logging`` (a
buffered stream entered twice raises "reentrant call", and logging prints a traceback)."""

from __future__ import annotations

import io
import logging
import os
import signal

from hnm.callbacks.checkpoint import StopRequest, interrupts


class ReentrancyCheckingStream(io.StringIO):
    """Like a buffered stdout: a write that starts while another is in progress raises; the
    first write is where the signal arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = False
        self.signalled = False

    def write(self, s: str) -> int:
        if self.busy:
            raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stdout>'>")
        self.busy = True
        try:
            if not self.signalled:
                self.signalled = True
                os.kill(os.getpid(), signal.SIGTERM)  # delivered during this write
            return super().write(s)
        finally:
            self.busy = False


def test_a_signal_during_a_log_write_records_the_stop_without_a_logging_error(capfd) -> None:
    stream = ReentrancyCheckingStream()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with interrupts(StopRequest()) as request:
            logging.getLogger("hnm.progress").info("train step 10/32")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    err = capfd.readouterr().err
    assert request.signum == signal.SIGTERM
    assert "Logging error" not in err and "Traceback" not in err, err
    assert "received SIGTERM: finishing this step, then saving a checkpoint" in err
