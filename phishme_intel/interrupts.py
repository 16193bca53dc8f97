"""Stop requests: SIGINT and SIGTERM ask a run to stop at its next safe point.

The one place that knows whether a stop was asked for. :func:`handling` installs the signal
handlers for the length of a ``with`` block (in the main thread; elsewhere it does nothing).
The first SIGINT or SIGTERM only notes the request; the sync looks at it between units of
work (:func:`check`, which raises :class:`~phishme_intel.errors.Interrupted` or
:class:`~phishme_intel.errors.Terminated`), so a run never stops halfway through a batch: it
keeps its last commit, closes its adapters and reports ``interrupted``. A second signal
ends the process at once, as if no handler were installed. Waits (the ``[pm_jitter]`` offset,
retry backoff) use :func:`sleep`, which returns as soon as a stop is requested.

Threads the sync starts block both signals (:func:`main_thread_only`), so the kernel delivers
them to the main thread, whatever it is waiting for. A program that embeds the library, or a
service loop, may call :func:`request_stop` itself, and :func:`clear` before a new run.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .errors import Interrupted, Terminated

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_POLL = 0.1
_requested: list[int] = []  # no lock: the handler runs in the main thread, between any two bytecodes


def request_stop(signum: int = signal.SIGTERM) -> None:
    """Ask the running sync to stop at its next safe point, as signal ``signum`` does."""
    if not _requested:
        _requested.append(signum)


def requested() -> int | None:
    """The signal number of the stop asked for, or None."""
    return _requested[0] if _requested else None


def clear() -> None:
    """Forget a stop request (a new run begins)."""
    _requested.clear()


def check() -> None:
    """Raise Interrupted (SIGINT) or Terminated (any other signal) if a stop was asked for."""
    signum = requested()
    if signum is not None:
        raise error(signum)


def error(signum: int) -> Interrupted:
    """The error a run stopped by ``signum`` ends with."""
    name = signal.Signals(signum).name
    kind = Interrupted if signum == signal.SIGINT else Terminated
    return kind(f"interrupted by {name}: stopped at a safe point, the last commit kept; "
                "the next run goes on from there")


def sleep(seconds: float) -> bool:
    """Wait ``seconds``, or less if a stop is requested meanwhile; True when it was."""
    end = time.monotonic() + seconds
    while requested() is None:
        left = end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(_POLL, left))
    return True


@contextmanager
def handling() -> Iterator[None]:
    """SIGINT and SIGTERM request a stop inside the block; a second one ends the process at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.signal(signum, _on_signal) for signum in SIGNALS}
    clear()
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def main_thread_only() -> None:
    """Block SIGINT and SIGTERM in the calling thread, so the kernel hands them to the main thread.

    Every thread the sync starts calls this first. A signal delivered to a thread blocked in a
    system call would only note itself for the main thread, which, waiting on a lock, would
    not run the handler until woken for another reason.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if requested() is not None:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    request_stop(signum)
