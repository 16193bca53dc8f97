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
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import IO

_SUFFIX = ".tmp"
_ANYONE = 0o666
_CHUNK = 65536
_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 16
PENDING_IN_MEMORY = 1 << 20
PENDING_SUFFIX = ".pending"
_LIBC = ctypes.CDLL(None, use_errno=True)


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
        os.fchmod(handle.fileno(), replaced.st_mode & 0o7777 if replaced else _ANYONE & ~_umask())
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
            if not _remove_entry(path):
                continue
        except OSError as exc:
            kept.append(f"{path} ({reason(exc)})")
            continue
        removed.append(path)
    return removed, kept


def _remove_entry(path: str) -> bool:
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


def _umask() -> int:
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


def _link_error(path: str) -> OSError:
    return OSError(errno.ELOOP, f"{path} is a symbolic link, and outputs are never written through one", path)


def refuse_link(path: str) -> None:
    """Raise OSError (ELOOP) if ``path`` is a symbolic link; nothing if it is anything else or absent."""
    if os.path.islink(path):
        raise _link_error(path)


def open_no_follow(path: str, flags: int) -> int:
    """``os.open`` with ``O_NOFOLLOW``; a new file gets what the umask gives (mode 0666 less it).

    A symbolic link at ``path`` raises OSError (ELOOP) naming it.
    """
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, _ANYONE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_error(path) from None
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


class FileBatch:
    """Files replaced together at one commit, durably, with one file-system sync for all of them.

    :meth:`write` puts each file's content in a hidden ``.<name>.pending`` file beside its
    target (the umask's mode for a new file, the replaced file's otherwise; a later write
    of the same target replaces it; nothing is fsynced yet). :meth:`commit` syncs the file
    system once (``syncfs``; ``sync`` where there is none), renames each pending file over
    its target and fsyncs each folder once: the same durability as :func:`write_atomic`
    per file, without a journal commit per file. A reader never sees a partial file; until
    the commit it sees the old ones. :meth:`discard` forgets what was not committed (and
    removes its files); a process that died leaves pending files for
    :func:`remove_pending` to clean up.

    A folder that does not exist yet is made by the commit, whole, when it is named to
    :meth:`add_folder` first: its files then wait, under their own names, in a hidden
    ``.<name>.pending`` folder beside it, which the commit renames to the folder's name
    after the sync (one rename for all its files, where a file in an existing folder
    takes one each).

    The pending files are written by a thread of the batch (:class:`_Writer`), in the order
    of the writes, while the caller goes on: creating a file is mostly the kernel's work,
    done without the interpreter's lock. At most ``held`` bytes (or one file) wait for it.
    A write that failed is raised, as an OSError naming its target, by the next call that
    waits for the writer or hands it a file; :meth:`commit` waits for every file first.
    One thread (any) uses a batch.
    """

    def __init__(self, held: int = PENDING_IN_MEMORY) -> None:
        self._pending: dict[str, str] = {}  # target -> its pending file, in order of first write
        self._new_folders: dict[str, str] = {}  # folder the commit makes -> the pending folder holding its files
        self._held = held
        self._writer: _Writer | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, target: str) -> bool:
        return target in self._pending

    def pending(self, target: str) -> str:
        """The pending file that holds what ``target`` becomes at the commit, once written. Raises OSError."""
        self._wait()
        return self._pending[target]

    def add_folder(self, folder: str) -> None:
        """Have the commit make ``folder`` (absent now) holding the files written in it since. Raises OSError.

        Its pending folder, beside it, is made now (mode 0777 less the umask); one that a
        process that died left there is removed first.
        """
        parent, slash, name = folder.rstrip("/").rpartition("/")
        pending = f"{parent}{slash}.{name}{PENDING_SUFFIX}"
        _remove_entry(pending)
        make_folder(pending)
        self._new_folders[folder.rstrip("/")] = pending

    def write(self, target: str, chunks: Iterable[bytes]) -> None:
        """Hold ``chunks`` as ``target``'s next content (written by the batch's thread). Raises OSError."""
        folder, slash, name = target.rpartition("/")
        new_folder = self._new_folders.get(folder)
        pending = f"{folder}{slash}.{name}{PENDING_SUFFIX}" if new_folder is None else f"{new_folder}/{name}"
        if self._writer is None:
            self._writer = _Writer(self._held)
        self._writer.put(target, pending, tuple(chunks))
        self._pending[target] = pending

    def drop(self, target: str) -> None:
        """Forget the pending content of ``target``, if any. Raises OSError."""
        if target in self._pending:
            self._wait()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._pending.pop(target))

    def commit(self) -> None:
        """Put every pending file in place, durably. Raises OSError naming the target that failed."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.finish()
        if not self._pending and not self._new_folders:
            return
        sync_file_system(os.path.dirname(next(iter(self._new_folders or self._pending))) or ".")  # a folder there now
        new_folders, self._new_folders = self._new_folders, {}
        for folder, pending in new_folders.items():
            try:
                os.rename(pending, folder)
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, folder) from None
        for target, pending in self._pending.items():
            if target.rpartition("/")[0] in new_folders:
                continue  # in place with its folder
            try:
                os.replace(pending, target)
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, target) from None
        paths = {target[:target.rfind("/") + 1] for target in self._pending}  # "" or up to the last slash
        paths.update(folder[:folder.rfind("/") + 1] for folder in new_folders)
        for folder in sorted({os.path.dirname(path) or "." for path in paths}):
            fsync_folder(folder)
        self._pending.clear()

    def discard(self) -> None:
        """Forget everything not committed and remove its pending files (the files not yet written are not)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.cancel()
        for pending in self._pending.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pending)
        self._pending.clear()
        for pending in self._new_folders.values():
            _remove_entry(pending)
        self._new_folders.clear()

    def _wait(self) -> None:
        if self._writer is not None:
            self._writer.wait()


class _Writer:
    """The thread of a :class:`FileBatch`: writes each pending file given to :meth:`put`, in order.

    Holds at most ``held`` bytes of files not yet written (and always one file). After a
    write fails, it writes nothing more; the failure (an OSError naming the target) is
    raised by :meth:`put`, :meth:`wait` and :meth:`finish`.
    """

    def __init__(self, held: int) -> None:
        self._limit = held
        self._changed = threading.Condition(threading.Lock())
        self._queue: deque[tuple[str, str, tuple[bytes, ...], int] | None] = deque()
        self._held = 0  # bytes given and not yet written
        self._unwritten = 0  # files given and not yet written (or skipped after a failure)
        self._error: OSError | None = None
        self._idle = False  # the thread waits for a file
        self._waiting = 0  # callers that wait for the thread
        self._thread = threading.Thread(target=self._run, name="phishme-intel pending files", daemon=True)
        self._thread.start()

    def put(self, target: str, pending: str, parts: tuple[bytes, ...]) -> None:
        """Have ``parts`` written to ``pending`` (the content of ``target``); waits while too much is held."""
        size = sum(map(len, parts))
        with self._changed:
            while self._held and self._held + size > self._limit and self._error is None:
                self._wait_for_thread()
            self._raise()
            self._queue.append((target, pending, parts, size))
            self._held += size
            self._unwritten += 1
            if self._idle:
                self._changed.notify_all()

    def wait(self) -> None:
        """Wait until every file given is written."""
        with self._changed:
            while self._unwritten:
                self._wait_for_thread()
            self._raise()

    def _wait_for_thread(self) -> None:
        """Wait (holding ``_changed``) until the thread wrote a file or ended."""
        self._waiting += 1
        self._changed.wait()
        self._waiting -= 1

    def finish(self) -> None:
        """Write every file given, then end the thread."""
        self._stop()
        self._raise()

    def cancel(self) -> None:
        """End the thread once the file being written (if any) is; the others given are not written."""
        with self._changed:
            self._unwritten -= len(self._queue)
            self._held -= sum(item[3] for item in self._queue if item is not None)
            self._queue.clear()
        self._stop()

    def _stop(self) -> None:
        with self._changed:
            self._queue.append(None)
            self._changed.notify_all()
        self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise OSError(self._error.errno, reason(self._error), self._error.filename)

    def _run(self) -> None:
        written: tuple[int, OSError | None] | None = None  # the size of the file last written, and its error
        while True:
            with self._changed:  # once a file: tells what was written and takes the next
                if written is not None:
                    self._error = self._error or written[1]
                    self._held -= written[0]
                    self._unwritten -= 1
                    if self._waiting:
                        self._changed.notify_all()
                while not self._queue:
                    self._idle = True
                    self._changed.wait()
                self._idle = False
                item = self._queue.popleft()
            if item is None:
                return
            target, pending, parts, size = item
            error = None
            if self._error is None:
                try:
                    _write_pending(target, pending, parts)
                except OSError as exc:
                    error = OSError(exc.errno, reason(exc), target)
            written = (size, error)


def _write_pending(target: str, pending: str, parts: Sequence[bytes]) -> None:
    """Write ``parts`` to the new file ``pending`` with the permission bits of ``target`` (the umask's if none)."""
    replaced = None
    if os.access(target, os.F_OK, follow_symlinks=False):  # no exception to make when it is absent
        with contextlib.suppress(FileNotFoundError):
            replaced = os.lstat(target)
    if replaced is not None and stat.S_ISLNK(replaced.st_mode):
        raise _link_error(target)
    fd = open_no_follow(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        write_all(fd, parts)
        if replaced is not None:
            os.fchmod(fd, replaced.st_mode & 0o7777)
    finally:
        os.close(fd)


def remove_pending(folder: str) -> None:
    """Remove the pending files and folders a :class:`FileBatch` of a process that died left in ``folder``."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(PENDING_SUFFIX):
                _remove_entry(entry.path)


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
