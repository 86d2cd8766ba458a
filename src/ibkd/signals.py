"""SIGTERM handled as Ctrl-C: a scheduler's or `kill`'s polite stop unwinds the way an
interrupt does (logs closed, the lock released, one line printed), instead of ending the
process silently with status 143."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """A KeyboardInterrupt raised by a signal other than SIGINT; `signum` is its number (the
    exit status is 128 + signum, as for a process the signal ended)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interrupt_status(e: KeyboardInterrupt) -> int:
    """The exit status for an interrupt: 128 + its signal's number (130 for Ctrl-C)."""
    return 128 + (e.signum if isinstance(e, Terminated) else signal.SIGINT)


def interrupt_name(e: KeyboardInterrupt) -> str:
    """`SIGTERM` for a `Terminated`, else `Ctrl-C`."""
    return str(e) if isinstance(e, Terminated) else "Ctrl-C"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """For the block, SIGTERM raises `Terminated` (a KeyboardInterrupt) in the main thread; the
    previous handler is restored afterwards. Outside the main thread (where Python cannot
    install handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
