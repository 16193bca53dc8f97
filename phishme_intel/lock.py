"""One run at a time: an OS lock (``flock``) on the configured lock file.

The kernel releases the lock when the holding process ends, however it ends, so a run
killed with ``kill -9`` never blocks the next one (the vendor library's existence-only lock
file did, for hours). The file itself is kept between runs: removing it would let two runs
lock two different files of the same name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock, Timeout

from .errors import Error, LockHeld

log = logging.getLogger(__name__)


@contextmanager
def hold(lock_file: str | None) -> Iterator[None]:
    """Hold the lock on ``lock_file`` for the ``with`` block; None means locking is off.

    Raises LockHeld at once, without waiting, when another process holds it.
    """
    if lock_file is None:
        yield
        return
    lock = FileLock(lock_file, blocking=False, fallback_to_soft=False, preserve_lock_file=True)
    try:
        lock.acquire()
    except Timeout:
        held = LockHeld(f"another run holds the lock {lock_file}; this run did nothing")
        log.warning("%s", held)
        raise held from None
    except OSError as exc:
        raise Error(f"cannot take the lock {lock_file}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        lock.release()
