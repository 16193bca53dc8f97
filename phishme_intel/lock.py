"""One run at a time: an OS lock (``flock``) on the configured lock file.

The kernel releases the lock when the holding process ends, however it ends, so a run
killed with ``kill -9`` never blocks the next one (the vendor library's existence-only lock
file did, for hours). The file itself is kept between runs: removing it would let two runs
lock two different files of the same name.

The file is private (mode 0600, set again at each run if it was looser): ``flock`` needs only
a read handle, so a lock file others could open would let any local user stop every run.
It is never opened through a symbolic link.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import Error, LockHeld
from .files import open_no_follow, reason

log = logging.getLogger(__name__)
PRIVATE = 0o600


@contextmanager
def hold(lock_file: str | None) -> Iterator[None]:
    """Hold the lock on ``lock_file`` for the ``with`` block; None means locking is off.

    Raises LockHeld at once, without waiting, when another process holds it.
    """
    if lock_file is None:
        yield
        return
    try:
        fd = open_no_follow(lock_file, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise Error(f"cannot take the lock {lock_file}: {reason(exc)}") from None
    try:
        with contextlib.suppress(PermissionError):  # another user's file: theirs to fix; flock still works
            os.fchmod(fd, PRIVATE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = LockHeld(f"another run holds the lock {lock_file}; this run did nothing")
            log.warning("%s", held)
            raise held from None
        except OSError as exc:
            raise Error(f"cannot take the lock {lock_file}: {reason(exc)}") from None
        yield
    finally:
        os.close(fd)
