"""Files replaced together at a commit (:class:`FileBatch`), their contents written by a ``tar`` process.

A STIX or JSON files backfill creates a file per threat: 12,000 for W1. Each file takes
three system calls (open, write, close), and each call lets go of the interpreter's lock
and takes it back. With the other threads of a sync at work, taking it back means waiting
for the thread that holds it to hand it over, often from the other core: a wait and a
cache refill per call, which cost more than the kernel's work (W1's 12,000 STIX bundles
written by one thread as another built them: 1.9-3.1 s in all, where building them alone
took 1.1 s; handed to ``tar``, 1.3-1.4 s). So a batch hands its files, as a tar archive
(a 512-byte header each), to a ``tar -x`` process that creates them on its own core: one
``writev`` to a pipe per :data:`~phishme_intel.files.PENDING_IN_MEMORY` bytes.

The archive is ours alone (no member but a pending file, each named as it will be), and
``tar`` runs with the environment emptied (``TAR_OPTIONS`` could change what it does) but
``LC_ALL=C``, with ``-P`` (names as given), ``-p`` (the mode in the header: the replaced
file's, or 0666 less the umask), ``-m`` (modified now) and ``-o`` (owned by this user). It
must be GNU tar, which removes whatever is at a member's name, a link included, and
creates the file anew (another tar may refuse these options or follow a link); where
there is none, the batch writes the files itself. A failure (permission, full disk) is
the error ``tar`` reports for a member, raised as an OSError naming its target.

A commit renames its files holding the lock (see
:func:`~phishme_intel.files.replace_holding_the_lock`), for the same reason.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence

from .files import (
    NEW_FILE_MODE,
    PENDING_IN_MEMORY,
    current_umask,
    fsync_folder,
    link_error,
    make_folder,
    mode_holding_the_lock,
    open_no_follow,
    reason,
    remove_entry,
    replace_holding_the_lock,
    sync_file_system,
    write_all,
)

PENDING_SUFFIX = ".pending"
#: Each error message to its number (``tar`` writes the message).
_ERRNO_OF = {os.strerror(number): number for number in sorted(errno.errorcode, reverse=True)}
_BLOCK = 512
_PIPE_SIZE = 1 << 20


class FileBatch:
    """Files replaced together at one commit, durably, with one file-system sync for all of them.

    :meth:`write` puts each file's content in a hidden ``.<name>.pending`` file beside its
    target (the umask's mode for a new file, the replaced file's otherwise; a later write
    of the same target replaces it; nothing is fsynced yet). :meth:`commit` syncs the file
    system once (``syncfs``; ``sync`` where there is none), renames each pending file over
    its target and fsyncs each folder once: the same durability as
    :func:`~phishme_intel.files.write_atomic` per file, without a journal commit per file. A
    reader never sees a partial file; until the commit it sees the old ones. :meth:`discard`
    forgets what was not committed (and removes its files); a process that died leaves
    pending files for :func:`remove_pending` to clean up.

    A folder that does not exist yet is made by the commit, whole, when it is named to
    :meth:`add_folder` first: its files then wait, under their own names, in a hidden
    ``.<name>.pending`` folder beside it, which the commit renames to the folder's name
    after the sync (one rename for all its files, where a file in an existing folder
    takes one each).

    The pending files are created by a ``tar -x`` process (see the module's docstring),
    which is handed what was written each time ``held`` bytes are (the caller waits only
    while ``tar`` is that far behind), and ends at :meth:`pending`, :meth:`drop` or
    :meth:`commit`, which raise the first failure it reports, as an OSError naming the
    target; :meth:`write` raises one it can see at once (a link at the target, its folder
    missing). After a failure nothing more is written: each call raises it until
    :meth:`discard`. One thread (any) uses a batch.
    """

    def __init__(self, held: int = PENDING_IN_MEMORY) -> None:
        self._pending: dict[str, str] = {}  # target -> its pending file, in order of first write
        self._new_folders: dict[str, str] = {}  # folder the commit makes -> the pending folder holding its files
        self._held = held
        self._stream: _TarStream | None = None
        self._failure: OSError | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, target: str) -> bool:
        return target in self._pending

    def pending(self, target: str) -> str:
        """The pending file that holds what ``target`` becomes at the commit, once written. Raises OSError."""
        self._end_stream()
        return self._pending[target]

    def add_folder(self, folder: str) -> None:
        """Have the commit make ``folder`` (absent now) holding the files written in it since. Raises OSError.

        Its pending folder, beside it, is made now (mode 0777 less the umask); one that a
        process that died left there is removed first.
        """
        parent, slash, name = folder.rstrip("/").rpartition("/")
        pending = f"{parent}{slash}.{name}{PENDING_SUFFIX}"
        remove_entry(pending)
        make_folder(pending)
        self._new_folders[folder.rstrip("/")] = pending

    def write(self, target: str, chunks: Iterable[bytes]) -> None:
        """Have ``chunks`` be ``target``'s next content, in its pending file. Raises OSError naming the target."""
        self._raise()
        folder, slash, name = target.rpartition("/")
        new_folder = self._new_folders.get(folder)
        pending = f"{folder}{slash}.{name}{PENDING_SUFFIX}" if new_folder is None else f"{new_folder}/{name}"
        try:
            if self._stream is None and (tar := gnu_tar()) is not None:
                self._stream = _TarStream(tar)
            if self._stream is None:
                _write_pending(target, pending, tuple(chunks))
            else:
                self._stream.add(target, pending, tuple(chunks))
                if self._stream.buffered >= self._held:
                    self._stream.flush()
        except OSError as exc:
            self._failure = OSError(exc.errno, reason(exc), target)
            raise self._failure from None
        self._pending[target] = pending

    def drop(self, target: str) -> None:
        """Forget the pending content of ``target``, if any. Raises OSError."""
        if target in self._pending:
            self._end_stream()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._pending.pop(target))

    def commit(self) -> None:
        """Put every pending file in place, durably. Raises OSError naming the target that failed."""
        self._end_stream()
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
            replace_holding_the_lock(pending, target)
        paths = {target[:target.rfind("/") + 1] for target in self._pending}  # "" or up to the last slash
        paths.update(folder[:folder.rfind("/") + 1] for folder in new_folders)
        for folder in sorted({os.path.dirname(path) or "." for path in paths}):
            fsync_folder(folder)
        self._pending.clear()

    def discard(self) -> None:
        """Forget everything not committed and remove its pending files; a failure is forgotten too."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.kill()
        for pending in self._pending.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pending)
        self._pending.clear()
        for pending in self._new_folders.values():
            remove_entry(pending)
        self._new_folders.clear()
        self._failure = None

    def _end_stream(self) -> None:
        """Have ``tar`` write what it was handed and end; raise the first failure (this one's or an earlier)."""
        self._raise()
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self._failure = stream.end()
            self._raise()

    def _raise(self) -> None:
        if self._failure is not None:
            failure = self._failure
            raise OSError(failure.errno, failure.strerror, failure.filename)


def _replaced_mode(target: str) -> int | None:
    """The permission bits of the file ``target`` names, None if there is none; OSError (ELOOP) for a link."""
    replaced = mode_holding_the_lock(target)
    if replaced is not None and stat.S_ISLNK(replaced):
        raise link_error(target)
    return None if replaced is None else replaced & 0o7777


def _write_pending(target: str, pending: str, parts: Sequence[bytes]) -> None:
    """Write ``parts`` to the new file ``pending`` with the permission bits of ``target`` (the umask's if none)."""
    replaced = _replaced_mode(target)
    fd = open_no_follow(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        write_all(fd, parts)
        if replaced is not None:
            os.fchmod(fd, replaced)
    finally:
        os.close(fd)


def remove_pending(folder: str) -> None:
    """Remove the pending files and folders a :class:`FileBatch` of a process that died left in ``folder``."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(PENDING_SUFFIX):
                remove_entry(entry.path)


@functools.cache
def gnu_tar() -> str | None:
    """The GNU tar on PATH (whose options and ways :class:`_TarStream` counts on), or None if there is none."""
    tar = shutil.which("tar")
    if tar is None:
        return None
    try:
        said = subprocess.run(["tar", "--version"], executable=tar, capture_output=True, env={"LC_ALL": "C"},
                              timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return tar if said.startswith(b"tar (GNU tar)") else None


class _TarStream:
    """A ``tar -x`` process that creates the files streamed to it, in order (see the module's docstring)."""

    def __init__(self, tar: str) -> None:
        # not a pipe: tar never waits for us to read what it says; closed by end()
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(
            ["tar", "-x", "-P", "-p", "-m", "-o", "-f", "-"], executable=tar, stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=self._errors, env={"LC_ALL": "C"},  # it says "tar: <member>: ..."
        )
        with contextlib.suppress(OSError):  # a larger pipe: the caller waits less for tar (Linux)
            fcntl.fcntl(self._process.stdin.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        self._parts: list[bytes] = []
        self._members: dict[str, str] = {}  # pending file -> its target, in order
        self.buffered = 0  # bytes added and not yet handed to tar
        self._folders: set[str] = set()  # the folders of the pending files, each seen to be there
        self._mode = NEW_FILE_MODE & ~current_umask()
        self._mtime = b"%011o\0" % int(time.time())
        self._broken = False

    def add(self, target: str, pending: str, parts: Sequence[bytes]) -> None:
        """Stream ``parts`` as the file ``pending`` (what ``target`` becomes). Raises OSError naming what is wrong."""
        size = sum(map(len, parts))
        self._parts += (self._header(os.fsencode(pending), size, self._mode_for(target, pending)), *parts)
        if size % _BLOCK:
            self._parts.append(bytes(_BLOCK - size % _BLOCK))
        self._members[pending] = target
        self.buffered += size

    def flush(self) -> None:
        """Hand what was added to ``tar``."""
        parts, self._parts = self._parts, []
        self.buffered = 0
        if parts and not self._broken:
            try:
                write_all(self._process.stdin.fileno(), parts)
            except BrokenPipeError:  # tar ended: end() says why
                self._broken = True

    def end(self) -> OSError | None:
        """End the archive and wait for ``tar``: the error of the first file it failed to write, if one."""
        self._parts.append(bytes(2 * _BLOCK))
        self.flush()
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        status = self._process.wait()
        self._errors.seek(0)
        said = self._errors.read().decode("utf-8", "replace").splitlines()
        self._errors.close()
        return None if status == 0 else self._failure(status, said)

    def kill(self) -> None:
        """Stop ``tar`` at once; what it did not write yet is not written."""
        self._process.kill()
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        self._process.wait()
        self._errors.close()

    def _mode_for(self, target: str, pending: str) -> int:
        """The permission bits of a new ``target``: the file's it replaces, or the umask's; OSError if it cannot be."""
        folder = os.path.dirname(pending) or "."
        if folder not in self._folders:
            if not os.path.isdir(folder):  # tar would make it: a missing folder is an error here
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), pending)
            self._folders.add(folder)
        replaced = _replaced_mode(target)
        return self._mode if replaced is None else replaced

    def _header(self, name: bytes, size: int, mode: int) -> bytes:
        """The ustar header of a regular file (a pax header before it for a name ustar cannot hold)."""
        prefix = b""
        if len(name) > 100:
            cut = name.find(b"/", len(name) - 101)
            if 0 < cut <= 155:
                prefix, name = name[:cut], name[cut + 1:]
            else:
                return self._pax_path(name) + self._header(b"././@PaxHeader-long-name", size, mode)
        fields = [
            name.ljust(100, b"\0"), b"%07o\0" % mode, b"0000000\0" * 2, b"%011o\0" % size, self._mtime,
            b" " * 8, b"0", bytes(100), b"ustar\x0000", bytes(80), prefix.ljust(155, b"\0"), bytes(12),
        ]
        header = b"".join(fields)
        return b"".join((header[:148], b"%06o\0 " % sum(header), header[156:]))

    def _pax_path(self, name: bytes) -> bytes:
        """A pax extended header (``x``) that gives the next member the name ``name``."""
        body = b" path=" + name + b"\n"
        length = len(body) + 1
        while len(b"%d" % length) + len(body) != length:
            length += 1
        record = b"%d" % length + body
        header = b"".join((
            b"././@PaxHeader".ljust(100, b"\0"), b"0000644\0", b"0000000\0" * 2, b"%011o\0" % len(record),
            self._mtime, b" " * 8, b"x", bytes(100), b"ustar\x0000", bytes(247),
        ))
        header = b"".join((header[:148], b"%06o\0 " % sum(header), header[156:]))
        return header + record + bytes(-len(record) % _BLOCK)

    def _failure(self, status: int, said: list[str]) -> OSError:
        """The error of the first member ``tar`` says it failed to write (or of the stream, if it names none)."""
        for line in said:  # "tar: <member>: Cannot open: Permission denied"
            text = line.removeprefix("tar: ")
            at = text.find(": ")
            while at > 0:
                if (target := self._members.get(text[:at])) is not None:
                    message = text[at + 2:].rpartition(": ")[2]
                    return OSError(_ERRNO_OF.get(message, errno.EIO), message, target)
                at = text.find(": ", at + 2)
        first = next(iter(self._members.values()), "")
        return OSError(errno.EIO, f"tar ended with status {status}: {said[0] if said else 'nothing said'}", first)
