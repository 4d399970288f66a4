"""Stop a run cleanly on SIGTERM / SIGINT: the signal only sets a flag; the run acts on it at safe points.

``train.py`` installs the handlers for the life of one run (``handled()``). The training loop saves a
checkpoint at the end of the current step and stops (``lightning_nas.run.checkpoints.RunCheckpoint``,
through Lightning's own ``received_sigterm`` exit); loops that score many architectures (ranking,
selection, tabulation) call ``check()`` between architectures, so a long pass stops within one
architecture. ``train.py`` then
exits with 128 + the signal number and one line saying how to resume. A second SIGINT interrupts at
once (KeyboardInterrupt), for a user who does not want to wait.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)

_pending: int | None = None  # the signal number received, or None


class Interrupted(SystemExit):
    """Raised at a safe point after SIGTERM/SIGINT; ``signum`` is the signal, exit status 128 + signum.

    A ``SystemExit`` like Lightning's ``SIGTERMException``, so that no ``except Exception`` swallows it."""

    def __init__(self, signum: int, where: str = "") -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.where = where

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def pending() -> int | None:
    """The signal number received since the handlers were installed, or None."""
    return _pending


def check(where: str = "") -> None:
    """Raise ``Interrupted`` if a stop signal is pending (call between units of work)."""
    if _pending is not None:
        raise Interrupted(_pending, where)


def _handler(signum: int, frame: object) -> None:
    global _pending
    if signum == signal.SIGINT and _pending is not None:
        raise KeyboardInterrupt  # a second Ctrl-C: stop now
    _pending = signum


def reset() -> None:
    global _pending
    _pending = None


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the flag-setting handlers (main thread only) and restore the previous ones afterwards."""
    reset()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, _handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
