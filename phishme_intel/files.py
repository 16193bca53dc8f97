"""Files we write: atomic replacement, appended lines, and the checks that an output can be written.

Replacing a file so that a crash at any instant leaves the old file or the new one
(:func:`write_atomic`): the new content goes to a temporary file in the same folder (so the
rename cannot cross file systems), is flushed and fsynced, takes the old file's permission
bits, and is renamed over the target with :func:`os.replace`; then the folder is fsynced so
the rename itself survives a power cut. On any error the temporary file is removed and the
target untouched.

Permissions and links: a new file or folder gets what the process umask gives (0o666 or
0o777 less the umask, as ``open(2)`` and ``mkdir(2)`` would), so an administrator decides
who may read the outputs (``UMask=`` of the systemd unit, ``umask`` in a crontab); a
replaced file keeps its permission bits and, when root replaces it, its owner and group.
No output is ever written through a symbolic link, at its own path or at a folder this
tool creates (:func:`open_no_follow`, :func:`make_folder`, and a check before each
replacement), so a link planted in a shared output folder cannot make the sync user
overwrite another file; only config.ini itself is followed on purpose (``follow_link``).

:func:`append_lines` adds complete lines or nothing: a write that fails
(disk full, quota) is cut back to where the file ended before it, and a partial last line
left by a crash is cut off before the next append, so a reader never sees half an event.
The file is opened for each append, so ``logrotate`` may rename or truncate it between runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import IO

_SUFFIX = ".tmp"
NEW_FILE_MODE = 0o666
_CHUNK = 65536
_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 16
#: Bytes of pending output a writer holds in memory before handing them to a file (or to ``tar``).
PENDING_IN_MEMORY = 256 * 1024
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC_HOLDING_THE_LOCK = ctypes.PyDLL(None, use_errno=True)  # its calls keep the interpreter's lock
#: statx(2): its arguments, and where stx_mode (16 bits) lies in the 256 bytes of struct statx, on every architecture.
_AT_FDCWD, _AT_SYMLINK_NOFOLLOW, _STATX_TYPE_AND_MODE = -100, 0x100, 0x3
_STATX_SIZE, _STATX_MODE_AT = 256, 28


def write_atomic(target: str, data: bytes, follow_link: bool = False) -> None:
    """Replace ``target`` with ``data`` atomically and durably.

    The new file keeps the permission bits of the file it replaces, and its owner and group
    when run as root; a new file gets what the umask gives. The temporary file is 0600 until
    it takes those bits. A symbolic link at ``target`` is refused (OSError ELOOP), unless
    ``follow_link``: then the file it points to is replaced (config.ini).
    Raises OSError (disk full, permission denied, ...) with the target left as it was.
    """
    write_atomic_chunks(target, [data], follow_link)


def write_atomic_chunks(target: str, chunks: Iterable[bytes], follow_link: bool = False) -> None:
    """:func:`write_atomic` of the concatenated ``chunks``, written as they come (never all in memory)."""
    with Replacement(target, follow_link) as replacement:
        for chunk in chunks:
            replacement.write(chunk)
        replacement.finish()


class Replacement:
    """The new content of ``target``, written as it comes to a temporary file beside it (:func:`write_atomic`).

    Used as a context manager: :meth:`finish` replaces ``target``; leaving the block without
    it (an error) removes the temporary file and leaves ``target`` as it was.
    """

    def __init__(self, target: str, follow_link: bool = False) -> None:
        if follow_link:
            target = os.path.realpath(target)
        else:
            refuse_link(target)
            target = os.path.abspath(target)
        self.target = target
        try:
            self._replaced: os.stat_result | None = os.stat(target)
        except FileNotFoundError:
            self._replaced = None
        fd, self._temporary = tempfile.mkstemp(dir=os.path.dirname(target), prefix=_prefix(target), suffix=_SUFFIX)
        self._handle = os.fdopen(fd, "wb")
        self._finished = False

    def __enter__(self) -> Replacement:
        return self

    def __exit__(self, *_exc: object) -> None:
        if not self._finished:
            self._handle.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temporary)

    def write(self, data: bytes) -> None:
        self._handle.write(data)

    def finish(self, keep_same: bool = False) -> bool:
        """Replace ``target`` durably; with ``keep_same``, not when it holds these bytes already. True if replaced."""
        replaced, handle = self._replaced, self._handle
        handle.flush()
        if keep_same and replaced and _same_content(self._temporary, self.target, replaced.st_size):
            return False  # __exit__ removes the temporary file
        if replaced and os.geteuid() == 0:
            os.fchown(handle.fileno(), replaced.st_uid, replaced.st_gid)
        os.fchmod(handle.fileno(), replaced.st_mode & 0o7777 if replaced else NEW_FILE_MODE & ~current_umask())
        os.fsync(handle.fileno())
        handle.close()
        os.replace(self._temporary, self.target)
        self._finished = True
        fsync_folder(os.path.dirname(self.target))
        return True


def _same_content(written: str, target: str, size: int) -> bool:
    """Whether the file ``written`` holds the bytes of ``target`` (of ``size`` bytes), compared chunk by chunk."""
    if os.path.getsize(written) != size:
        return False
    with open(written, "rb") as new, open(target, "rb") as old:
        while chunk := new.read(_CHUNK):
            if old.read(_CHUNK) != chunk:
                return False
    return True


def remove_leftovers(target: str) -> tuple[list[str], list[str]]:
    """Remove what writers of ``target`` killed mid-write left behind: ``.<name>.*.tmp`` beside it.

    Call it only while holding the lock that keeps other writers of ``target`` away. Any
    type is removed: a file, a link (not what it points to), a directory with its content.
    Returns the paths removed, and for each entry that could not be, its path and why; it
    raises nothing, so a stubborn leftover is reported by name but never fails the caller.
    """
    target = os.path.realpath(target)
    folder, prefix = os.path.dirname(target), _prefix(target)
    removed, kept = [], []
    for name in os.listdir(folder):
        if not (name.startswith(prefix) and name.endswith(_SUFFIX)):
            continue
        path = os.path.join(folder, name)
        try:
            if not remove_entry(path):
                continue
        except OSError as exc:
            kept.append(f"{path} ({reason(exc)})")
            continue
        removed.append(path)
    return removed, kept


def remove_entry(path: str) -> bool:
    """Remove the file, link (not what it points to) or folder (with its content) at ``path``; False if none.

    Raises OSError.
    """
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _prefix(target: str) -> str:
    return f".{os.path.basename(target)}."


def current_umask() -> int:
    """The process umask, read without changing it where Linux tells it (``/proc/self/status``):
    setting it to read it would, for that moment, give the files another thread creates (the
    adapters run on threads of their own) the wrong permission bits."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def link_error(path: str) -> OSError:
    return OSError(errno.ELOOP, f"{path} is a symbolic link, and outputs are never written through one", path)


def refuse_link(path: str) -> None:
    """Raise OSError (ELOOP) if ``path`` is a symbolic link; nothing if it is anything else or absent."""
    if os.path.islink(path):
        raise link_error(path)


def open_no_follow(path: str, flags: int) -> int:
    """``os.open`` with ``O_NOFOLLOW``; a new file gets what the umask gives (mode 0666 less it).

    A symbolic link at ``path`` raises OSError (ELOOP) naming it.
    """
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, NEW_FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise link_error(path) from None
        raise


def make_folder(folder: str) -> bool:
    """Create ``folder`` (mode 0777 less the umask) unless it is there; True if it was created.

    Refuses (OSError) a symbolic link, or anything but a folder, at that name: a link
    planted where an output folder will be would send the outputs elsewhere.
    """
    try:
        os.mkdir(folder)
        return True
    except FileExistsError:
        refuse_link(folder)
        if not os.path.isdir(folder):
            raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder", folder) from None
        return False


def fsync_folder(folder: str) -> None:
    """Make the creation, rename or removal of entries in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def folder_problem(folder: str) -> str | None:
    """Why ``folder`` cannot be used, or created, as an output folder; None if it can."""
    if os.path.islink(folder):
        return f"{folder} is a symbolic link, and phishme-intel never writes through one: name the folder itself"
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


def replace_holding_the_lock(source: str, target: str) -> None:
    """:func:`os.replace` that keeps the interpreter's lock while the kernel renames (``rename(2)``).

    For the thousands of renames of a commit (:class:`~phishme_intel.file_batch.FileBatch`),
    each a few microseconds of the kernel's work: :func:`os.replace` lets go of the lock for
    each, and with other threads at work getting it back means waiting for it to be handed
    over (5,000 renames beside a busy thread: 2.8-3.0 s that way, 0.16 s this way). Raises
    OSError naming ``target``.
    """
    if _LIBC_HOLDING_THE_LOCK.rename(os.fsencode(source), os.fsencode(target)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), target)


def mode_holding_the_lock(path: str) -> int | None:
    """``st_mode`` of what is at ``path`` (a link itself, not followed), None if nothing; keeps the interpreter's lock.

    Linux's ``statx(2)`` through :data:`ctypes.PyDLL`, for the same reason as
    :func:`replace_holding_the_lock` (:func:`os.lstat` where the C library has no ``statx``).
    Raises OSError.
    """
    statx = getattr(_LIBC_HOLDING_THE_LOCK, "statx", None)
    if statx is None:
        try:
            return os.lstat(path).st_mode
        except FileNotFoundError:
            return None
    found = ctypes.create_string_buffer(_STATX_SIZE)
    if statx(_AT_FDCWD, os.fsencode(path), _AT_SYMLINK_NOFOLLOW, _STATX_TYPE_AND_MODE, found) == 0:
        return int.from_bytes(found.raw[_STATX_MODE_AT:_STATX_MODE_AT + 2], sys.byteorder)
    error = ctypes.get_errno()
    if error in (errno.ENOENT, errno.ENOTDIR):
        return None
    raise OSError(error, os.strerror(error), path)


def sync_file_system(folder: str) -> None:
    """Write every file's dirty data of the file system holding ``folder`` to disk (Linux ``syncfs``)."""
    syncfs = getattr(_LIBC, "syncfs", None)
    if syncfs is None:
        os.sync()
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), folder)
    finally:
        os.close(fd)


def append_lines(target: str, lines: list[bytes]) -> None:
    """Append ``lines`` (each without its newline) to ``target`` and fsync (see :func:`append_chunks`).

    Raises OSError with ``target`` as it was before the call.
    """
    append_chunks(target, [b"".join(line + b"\n" for line in lines)])


def append_chunks(target: str, chunks: Iterable[bytes]) -> None:
    """Append ``chunks`` (whole lines, each ending in a newline, when joined) to ``target`` and fsync.

    A new file gets what the umask gives; a symbolic link at ``target`` is refused.
    Raises OSError with ``target`` as it was before the call.
    """

    def write(fd: int) -> None:
        for chunk in chunks:
            write_all(fd, (chunk,))

    _append(target, write)


def _append(target: str, write: Callable[[int], None]) -> None:
    """:func:`append_chunks` of what ``write`` writes to the file descriptor it is given (opened to append)."""
    created = not os.path.lexists(target)
    fd = open_no_follow(target, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        before = _cut_partial_line(fd) if regular else 0
        try:
            write(fd)
            os.fsync(fd)
        except OSError:
            if regular:
                os.ftruncate(fd, before)
            raise
    finally:
        os.close(fd)
    if created:
        fsync_folder(os.path.dirname(os.path.abspath(target)))


def write_all(fd: int, parts: Sequence[bytes]) -> None:
    """Write ``parts`` to ``fd``, one after the other, whole: with ``writev``, again for what a short write left."""
    parts = list(parts)
    start = 0
    while start < len(parts):
        batch = parts[start:start + _IOV_MAX]
        written = os.writev(fd, batch)
        if written == sum(map(len, batch)):
            start += len(batch)
            continue
        for part in batch:
            if written < len(part):
                parts[start] = memoryview(part)[written:]
                break
            written -= len(part)
            start += 1


class PendingLines:
    """Lines held until a commit appends them: in memory up to ``limit`` bytes, beyond that in an
    unnamed temporary file (mode 0600, gone when closed), so a commit that covers a whole
    backfill does not grow the process.

    A line is held as the parts it was given (not copied into one) and written with ``writev``.
    """

    def __init__(self, limit: int = PENDING_IN_MEMORY) -> None:
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0  # bytes of _parts
        self._spool: IO[bytes] | None = None
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, *parts: bytes) -> None:
        """Hold the line ``parts`` make, one after the other (without its newline)."""
        self._parts += parts
        self._parts.append(b"\n")
        self._size += sum(map(len, parts)) + 1
        self._count += 1
        if self._size > self.limit:
            if self._spool is None:
                self._spool = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115 (closed by clear())
            write_all(self._spool.fileno(), self._parts)
            self._parts.clear()
            self._size = 0

    def append_to(self, target: str) -> None:
        """Append every held line to ``target`` and fsync (see :func:`append_chunks`); they stay held."""
        _append(target, self._write)

    def clear(self) -> None:
        """Forget every held line."""
        self._parts.clear()
        self._size = 0
        self._count = 0
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def _write(self, fd: int) -> None:
        if self._spool is not None:
            buffer = bytearray(_CHUNK)
            spooled, at = self._spool.fileno(), 0
            while read := os.preadv(spooled, [buffer], at):
                write_all(fd, [memoryview(buffer)[:read]])
                at += read
        write_all(fd, self._parts)


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
    if os.path.islink(target):
        return f"{target} is a symbolic link, and phishme-intel never writes through one: put the file itself there"
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
