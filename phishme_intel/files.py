"""Replacing a file so that a crash at any instant leaves the old file or the new one.

The new content goes to a temporary file in the same folder (so the rename cannot cross
file systems), is flushed and fsynced, takes the old file's permission bits, and is renamed
over the target with :func:`os.replace`; then the folder is fsynced so the rename itself
survives a power cut. On any error the temporary file is removed and the target untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

_SUFFIX = ".tmp"


def write_atomic(target: str, data: bytes, mode: int | None = None) -> None:
    """Replace ``target`` with ``data`` atomically and durably.

    ``mode``: permission bits for the new file; by default those of the file it replaces
    (0o600 for a new file). A symlink is followed: the file it points to is replaced.
    Raises OSError (disk full, permission denied, ...) with the target left as it was.
    """
    target = os.path.realpath(target)
    folder = os.path.dirname(target)
    if mode is None:
        try:
            mode = os.stat(target).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o600
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=_prefix(target), suffix=_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_folder(folder)


def remove_leftovers(target: str) -> list[str]:
    """Remove the temporary files that writers of ``target`` killed mid-write left behind.

    Call it only while holding the lock that keeps other writers of ``target`` away.
    Returns the paths removed.
    """
    target = os.path.realpath(target)
    folder, prefix = os.path.dirname(target), _prefix(target)
    removed = []
    for name in os.listdir(folder):
        if name.startswith(prefix) and name.endswith(_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))
                removed.append(os.path.join(folder, name))
    return removed


def _prefix(target: str) -> str:
    return f".{os.path.basename(target)}."


def fsync_folder(folder: str) -> None:
    """Make the creation, rename or removal of entries in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
