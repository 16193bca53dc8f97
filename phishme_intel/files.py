"""Files we write: atomic replacement, appended lines, and the checks that an output can be written.

Replacing a file so that a crash at any instant leaves the old file or the new one
(:func:`write_atomic`): the new content goes to a temporary file in the same folder (so the
rename cannot cross file systems), is flushed and fsynced, takes the old file's permission
bits, and is renamed over the target with :func:`os.replace`; then the folder is fsynced so
the rename itself survives a power cut. On any error the temporary file is removed and the
target untouched.

Files that other programs read (a forwarder tailing JSON Lines, a web server serving a
blocklist): :func:`replace_file` gives a new file mode 0644, so a reader running as another
user can open it. :func:`append_lines` adds complete lines or nothing: a write that fails
(disk full, quota) is cut back to where the file ended before it, and a partial last line
left by a crash is cut off before the next append, so a reader never sees half an event.
The file is opened for each append, so ``logrotate`` may rename or truncate it between runs.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO

_SUFFIX = ".tmp"
NEW_FILE_MODE = 0o644
_CHUNK = 65536
PENDING_IN_MEMORY = 1 << 20


def write_atomic(target: str, data: bytes, mode: int | None = None) -> None:
    """Replace ``target`` with ``data`` atomically and durably.

    ``mode``: permission bits for the new file; by default those of the file it replaces
    (0o600 for a new file). A symlink is followed: the file it points to is replaced.
    Raises OSError (disk full, permission denied, ...) with the target left as it was.
    """
    write_atomic_chunks(target, [data], mode)


def write_atomic_chunks(target: str, chunks: Iterable[bytes], mode: int | None = None) -> None:
    """:func:`write_atomic` of the concatenated ``chunks``, written as they come (never all in memory)."""
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
            for chunk in chunks:
                handle.write(chunk)
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
    append_chunks(target, [b"".join(line + b"\n" for line in lines)])


def append_chunks(target: str, chunks: Iterable[bytes]) -> None:
    """Append ``chunks`` (whole lines, each ending in a newline, when joined) to ``target`` and fsync.

    A new file gets mode 0644. Raises OSError with ``target`` as it was before the call.
    """
    created = not os.path.exists(target)
    fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, NEW_FILE_MODE)
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        before = _cut_partial_line(fd) if regular else 0
        try:
            for chunk in chunks:
                data = memoryview(chunk)
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


class PendingLines:
    """Lines held until a commit appends them: in memory up to ``limit`` bytes, beyond that in an
    unnamed temporary file (mode 0600, gone when closed), so a commit that covers a whole
    backfill does not grow the process."""

    def __init__(self, limit: int = PENDING_IN_MEMORY) -> None:
        self.limit = limit
        self._memory = bytearray()
        self._spool: IO[bytes] | None = None
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, line: bytes) -> None:
        """Hold ``line`` (without its newline)."""
        self._memory += line
        self._memory += b"\n"
        self._count += 1
        if len(self._memory) > self.limit:
            if self._spool is None:
                self._spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by clear())
            self._spool.write(self._memory)
            self._memory.clear()

    def append_to(self, target: str) -> None:
        """Append every held line to ``target`` and fsync (see :func:`append_chunks`); they stay held."""
        append_chunks(target, self._chunks())

    def clear(self) -> None:
        """Forget every held line."""
        self._memory.clear()
        self._count = 0
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def _chunks(self) -> Iterator[bytes]:
        if self._spool is not None:
            self._spool.flush()
            self._spool.seek(0)
            while chunk := self._spool.read(_CHUNK):
                yield chunk
            self._spool.seek(0, os.SEEK_END)
        yield bytes(self._memory)


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


def writable_file_problem(target: str) -> str | None:
    """Why a file cannot be created or rewritten at ``target``, or None if it can."""
    if os.path.isdir(target):
        return f"{target} is a directory, not a file"
    folder = os.path.dirname(target) or "."
    if not os.path.isdir(folder):
        return f"the folder {folder} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable"
    if os.path.exists(target) and not os.access(target, os.W_OK):
        return f"{target} is not writable"
    return None
