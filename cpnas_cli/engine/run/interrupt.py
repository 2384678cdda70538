"""Ctrl-C as a request, not an exception: long loops stop at their next safe point.

Inside `graceful_interrupt()`, the first SIGINT only sets a flag that the loop polls between
batches (so it can checkpoint a consistent state); a second SIGINT interrupts at once.
"""

import signal
import threading
from contextlib import contextmanager


class Interrupted(Exception):
    """Raised by a loop after it saved its state in answer to Ctrl-C."""


@contextmanager
def graceful_interrupt():
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signals only reach the main thread; elsewhere the flag is set by the caller
        return

    def on_sigint(signum, frame):
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
