"""Files that other programs read: a forwarder tailing JSON Lines, a web server serving a blocklist.

:func:`replace_file` swaps in new content atomically (see :mod:`phishme_intel.atomic`) and
gives a new file mode 0644, so a reader running as another user can open it.
:func:`append_lines` adds complete lines or nothing: a write that fails (disk full, quota)
is cut back to where the file ended before it, and a partial last line left by a crash is
cut off before the next append, so a reader never sees half an event. The file is opened
for each append, so ``logrotate`` may rename or truncate it between runs.
"""

from __future__ import annotations

import os
import stat

from .atomic import fsync_folder, write_atomic

NEW_FILE_MODE = 0o644
_CHUNK = 65536


def folder_problem(folder: str) -> str | None:
    """Why ``folder`` cannot be used, or created, as an output folder; None if it can."""
    if os.path.exists(folder):
        if not os.path.isdir(folder):
            return f"{folder} is not a folder"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"the folder {folder} is not writable"
        return None
    parent = os.path.dirname(os.path.abspath(folder))
    if not os.path.isdir(parent):
        return f"neither {folder} nor the folder {parent} that would hold it exists"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{folder} does not exist and the folder {parent} is not writable"
    return None


def reason(exc: OSError) -> str:
    """The readable part of an OSError: ``No space left on device``, not ``[Errno 28] ...``."""
    return exc.strerror or str(exc)


def replace_file(target: str, data: bytes) -> None:
    """Replace ``target`` with ``data`` atomically and durably; a new file gets mode 0644.

    Raises OSError with ``target`` untouched.
    """
    write_atomic(target, data, mode=None if os.path.exists(target) else NEW_FILE_MODE)


def append_lines(target: str, lines: list[bytes]) -> None:
    """Append ``lines`` (each without its newline) to ``target`` and fsync; a new file gets mode 0644.

    Raises OSError with ``target`` as it was before the call.
    """
    created = not os.path.exists(target)
    fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, NEW_FILE_MODE)
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        before = _cut_partial_line(fd) if regular else 0
        try:
            data = memoryview(b"".join(line + b"\n" for line in lines))
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError:
            if regular:
                os.ftruncate(fd, before)
            raise
    finally:
        os.close(fd)
    if created:
        fsync_folder(os.path.dirname(os.path.abspath(target)))


def _cut_partial_line(fd: int) -> int:
    """Truncate the file after its last newline (a crash may have left a line unfinished); its new size."""
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    if end != size:
        os.ftruncate(fd, end)
    return end
