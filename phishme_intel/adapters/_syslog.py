"""Sending syslog messages: the RFC 5424 and RFC 3164 headers, and UDP, TCP, TLS or a file.

A transport takes whole messages (text, no newline), a list at a time, with
:meth:`Transport.send` and raises OSError (``ssl.SSLError`` and ``socket.gaierror`` are
OSErrors) when it cannot. :meth:`Transport.flush` is the commit: it returns only when what
was sent is as safe as the transport can make it.

UDP
    One datagram per message, on a connected socket, so an ICMP "port unreachable" from
    the receiver comes back as ECONNREFUSED (checked again at :meth:`flush`).
TCP and TLS
    Octet-counted framing (RFC 6587 3.4.1: ``<length> <message>``) or, for receivers that
    only split on line ends, a newline after each message (``lf``). Messages are framed and
    held until about 64 KiB are, then written at once (one by one when paced), and written
    out at :meth:`Transport.push`. Before each write the socket is polled. A
    receiver that closed the connection (a restart, an idle timeout) when nothing was
    written since the last :meth:`flush` is reconnected to. Once something was written since
    the last flush, a lost connection (closed by the receiver, a failed write) fails the
    send or the flush instead: TCP cannot tell what the receiver read of what was in flight,
    so the commit fails (exit 74, the position stays) and the next run sends the whole batch
    again; nothing is lost silently. :meth:`flush` waits (at most ``timeout``) until the
    receiver's TCP acknowledged every byte, then checks the connection is still open. TLS
    verifies the receiver's certificate and host name against the system CAs or
    ``ca_bundle``, may present a client certificate, and ends with a close_notify.
file
    The messages of each commit are held (in memory up to a limit, then in an unnamed
    temporary file) and appended and fsynced at :meth:`flush` (see
    :class:`phishme_intel.files.PendingLines`): a failed run appends nothing.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import itertools
import logging
import math
import os
import select
import socket
import ssl
import struct
import termios
import time
from collections.abc import Sequence
from typing import Protocol

from ..files import PendingLines, fsync_folder, open_no_follow

log = logging.getLogger(__name__)

APP_NAME = "phishme-intel"
FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8,
    "cron": 9, "authpriv": 10, "ftp": 11, **{f"local{n}": 16 + n for n in range(8)},
}
MAX_DATAGRAM = 65507
RECONNECT_ATTEMPTS = 3
RECONNECT_DELAY = 0.2
DRAIN_POLL = 0.005
CLOSE_NOTIFY_WAIT = 2.0
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def syslog_severity(cef_severity: int) -> int:
    """The syslog severity for a CEF severity: 9-10 critical, 7-8 warning, 4-6 notice, else informational."""
    if cef_severity >= 9:
        return 2
    if cef_severity >= 7:
        return 4
    return 5 if cef_severity >= 4 else 6


def header(style: str, facility: int, severity: int, hostname: str, now: float | None = None) -> str:
    """The syslog header (ending in a space) that goes before a message; empty for style ``none``.

    ``rfc5424``: ``<PRI>1 2026-11-23T11:30:00.123Z host phishme-intel 4242 - - ``;
    ``rfc3164``: ``<PRI>Nov 23 11:30:00 host phishme-intel[4242]: `` (local time).
    """
    return Headers(style, facility, hostname)(severity, now)


class Headers:
    """The :func:`header` of one sender (style, facility, host name and process fixed), made for each message.

    What does not change from one message to the next is formatted once, and the headers of
    every severity once per timestamp: while the clock stays within the moments that give the
    same timestamp (a millisecond for ``rfc5424``, a second for ``rfc3164``), the headers made
    for the first are those of the next.
    """

    def __init__(self, style: str, facility: int, hostname: str) -> None:
        self.style = style
        self._priorities = [f"<{facility * 8 + severity}>" for severity in range(8)]
        if style == "rfc5424":
            self._after = f" {hostname} {APP_NAME} {os.getpid()} - - "
        else:
            self._after = f" {hostname} {APP_NAME}[{os.getpid()}]: "
        self._made = [""] * 8
        # The moments [_since, _until) whose headers are _made: never again for style none.
        self._since, self._until = (-math.inf, math.inf) if style == "none" else (0.0, 0.0)

    def __call__(self, severity: int, now: float | None = None) -> str:
        """The header of a message of syslog ``severity`` (0-7) made ``now`` (default: the current time)."""
        return self.of_each(now)[severity]

    def of_each(self, now: float | None = None) -> list[str]:
        """The header of each syslog severity (0-7, the index) of a message made ``now`` (default: now)."""
        moment = time.time() if now is None else now
        if not self._since <= moment < self._until:
            self._restamp(moment)
        return self._made

    def _restamp(self, moment: float) -> None:
        if self.style == "rfc5424":
            second, milli = _utc_stamp(moment)
            stamp = f"1 {_utc_second(second)}.{milli:03d}Z"
            # The stamp grows with the moment; it stays the same at least until 1 us (more than the
            # rounding to the microsecond and the float's error) before the next millisecond.
            until = second + (milli + 1) / 1000 - 1e-6 - 4 * math.ulp(moment)
        else:
            second = math.floor(moment)
            stamp, until = _local_second(second), second + 1
        self._made = [f"{priority}{stamp}{self._after}" for priority in self._priorities]
        self._since, self._until = moment, until


def _utc_stamp(moment: float) -> tuple[int, int]:
    """The UTC second and millisecond of ``moment`` as datetime gives them (``2026-11-23T11:30:00.123``).

    datetime rounds a timestamp to the microsecond (half to even) and isoformat cuts that to
    the millisecond: the same here.
    """
    fraction, whole = math.modf(moment)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    elif micro < 0:
        whole, micro = whole - 1, micro + 1_000_000
    return int(whole), micro // 1000


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.timezone.utc).replace(tzinfo=None).isoformat()


@functools.lru_cache(maxsize=4)
def _local_second(second: int) -> str:
    """``Nov 23 11:30:00``, local time (RFC 3164: the day padded with a space)."""
    local = time.localtime(second)
    return f"{_MONTHS[local.tm_mon - 1]} {local.tm_mday:2d} {time.strftime('%H:%M:%S', local)}"


class Transport(Protocol):
    """Where messages go. ``destination`` names it for messages: ``tcp://siem.example.com:514``."""

    destination: str

    def open(self) -> None: ...

    def send(self, messages: Sequence[str]) -> None: ...

    def push(self) -> None:
        """Write what :meth:`send` may have buffered (a no-op where nothing is)."""

    def flush(self) -> None: ...

    def close(self) -> None: ...


class UdpTransport:
    """One datagram per message; messages longer than a datagram can carry are cut."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.destination = f"udp://{host}:{port}"
        self._socket: socket.socket | None = None

    def open(self) -> None:
        family, kind, proto, _, address = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
        self._socket = socket.socket(family, kind, proto)
        self._socket.connect(address)

    def send(self, messages: Sequence[str]) -> None:
        if self._socket is None:
            raise ConnectionError("not open")
        for message in messages:
            self._socket.send(message.encode()[:MAX_DATAGRAM])

    def push(self) -> None:
        pass

    def flush(self) -> None:
        if self._socket is not None and (error := self._socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)):
            raise OSError(error, os.strerror(error))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class TcpTransport:
    """A stream connection, plain or TLS (``tls`` an SSLContext), reconnected when the receiver drops it."""

    def __init__(
        self, host: str, port: int, timeout: float, framing: str, tls: ssl.SSLContext | None, buffer: int = 0,
    ) -> None:
        self.host, self.port, self.timeout, self.framing, self.tls = host, port, timeout, framing, tls
        self.buffer = buffer
        # What is not written yet: each message after its length (octet), or each message (lf: a
        # newline after each is added when they are joined); _size characters of messages in all.
        self._parts: list[str] = []
        self._size = 0
        self.destination = f"{'tls' if tls else 'tcp'}://{host}:{port}"
        self._socket: socket.socket | None = None
        self._written = False

    def open(self) -> None:
        self._written = False
        self._connect()

    def send(self, messages: Sequence[str]) -> None:
        """Hold the messages, framed but not copied, until about ``buffer`` characters are held."""
        if self.framing == "octet":  # the length in bytes: in characters when they are all ASCII
            lengths = [f"{len(text) if text.isascii() else len(text.encode())} " for text in messages]
            self._parts += itertools.chain.from_iterable(zip(lengths, messages, strict=True))
        else:
            self._parts += messages
        self._size += sum(map(len, messages))
        if self._size >= self.buffer:
            self.push()

    def push(self) -> None:
        if not self._parts:
            return
        data = ("".join(self._parts) if self.framing == "octet" else "\n".join([*self._parts, ""])).encode()
        if self._socket is None or self._closed_by_peer():
            self._reconnect("the receiver closed the connection")
        try:
            self._connection().sendall(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ssl.SSLEOFError) as exc:
            self._reconnect(f"a write failed ({exc.strerror or exc})")
            self._connection().sendall(data)
        self._written = True
        self._parts.clear()
        self._size = 0

    def flush(self) -> None:
        self.push()
        if self._socket is None:
            if self._written:
                raise ConnectionResetError("the connection was lost after events were sent on it")
            return
        self._drain()
        if self._closed_by_peer():
            self.close()
            raise ConnectionResetError(
                "the receiver closed the connection after the last event was sent; TCP cannot tell whether "
                "it read them all, so they will be sent again"
            )
        self._written = False

    def close(self) -> None:
        self._parts.clear()
        self._size = 0
        self._disconnect()

    def _disconnect(self) -> None:
        connection, self._socket = self._socket, None
        if connection is None:
            return
        if isinstance(connection, ssl.SSLSocket):
            try:  # close_notify, so the receiver sees an orderly end rather than a truncation
                connection.settimeout(min(self.timeout, CLOSE_NOTIFY_WAIT))
                connection = connection.unwrap()
            except (OSError, ValueError):
                pass
        connection.close()

    def _connection(self) -> socket.socket:
        if self._socket is None:
            raise ConnectionError("not connected")
        return self._socket

    def _connect(self) -> None:
        connection = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            if self.tls is not None:
                connection = self.tls.wrap_socket(connection, server_hostname=self.host)
        except BaseException:
            connection.close()
            raise
        self._socket = connection

    def _reconnect(self, why: str) -> None:
        if self._written:
            self._disconnect()
            raise ConnectionResetError(
                f"{why} after events were sent on it; TCP cannot tell which of them the receiver read, "
                "so they will be sent again"
            )
        self._disconnect()
        for attempt in range(RECONNECT_ATTEMPTS):
            try:
                self._connect()
                log.info("%s: %s; reconnected", self.destination, why)
                return
            except OSError:
                if attempt == RECONNECT_ATTEMPTS - 1:
                    raise
                time.sleep(RECONNECT_DELAY * 2**attempt)

    def _drain(self) -> None:
        """Wait until the receiver's TCP acknowledged every byte written (Linux: TIOCOUTQ), at most ``timeout``."""
        connection = self._connection()
        deadline = time.monotonic() + self.timeout
        while _unacknowledged(connection):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the receiver did not take the events sent within {self.timeout:g} s")
            time.sleep(DRAIN_POLL)

    def _closed_by_peer(self) -> bool:
        """Whether the receiver has closed the connection (it never sends data, so readable means closing)."""
        connection = self._connection()
        readable, _, _ = select.select([connection], [], [], 0)
        if not readable:
            return False
        connection.setblocking(False)
        try:
            if isinstance(connection, ssl.SSLSocket):
                return connection.recv(1) == b""
            return connection.recv(1, socket.MSG_PEEK) == b""
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        except OSError:
            return True
        finally:
            connection.settimeout(self.timeout)


def _unacknowledged(connection: socket.socket) -> int:
    """Bytes written to ``connection`` that the peer has not acknowledged yet (0 where the OS cannot tell)."""
    if not hasattr(termios, "TIOCOUTQ"):
        return 0
    return struct.unpack("i", fcntl.ioctl(connection.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]


class FileTransport:
    """Messages appended to a file, one per line, at each commit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.destination = path
        self._pending = PendingLines()

    def open(self) -> None:
        """Create the file if need be, so an unwritable path fails the run before anything is sent."""
        existed = os.path.lexists(self.path)
        os.close(open_no_follow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT))
        if not existed:
            fsync_folder(os.path.dirname(os.path.abspath(self.path)))

    def send(self, messages: Sequence[str]) -> None:
        for message in messages:
            self._pending.add(message.encode())

    def push(self) -> None:
        pass

    def flush(self) -> None:
        if self._pending:
            self._pending.append_to(self.path)
            self._pending.clear()

    def close(self) -> None:
        self._pending.clear()
