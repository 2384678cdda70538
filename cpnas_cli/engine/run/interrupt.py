"""Ctrl-C and SIGTERM as a request, not an exception: long loops stop at their next safe point.

Inside `graceful_interrupt()`, the first SIGINT (Ctrl-C) or SIGTERM (what schedulers, `kill` and
`torchrun` send) only sets a flag that the loop polls between batches, so it can checkpoint a
consistent state; a second one interrupts at once. The command then exits with 128 + the signal's
number, as a shell reports a process the signal ended: 130 for Ctrl-C, 143 for SIGTERM.
"""

import signal
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """Raised by a loop after it saved its state in answer to Ctrl-C or SIGTERM."""


class StopFlag(threading.Event):
    """Set when a stop was asked for; `signum` says by which signal (SIGINT when set by code)."""

    signum: int = signal.SIGINT

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def graceful_interrupt():
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signals only reach the main thread; elsewhere the flag is set by the caller
        return

    def on_signal(signum, frame):
        if flag.is_set():
            raise KeyboardInterrupt
        flag.signum = signum
        flag.set()

    previous = {s: signal.signal(s, on_signal) for s in SIGNALS}
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
