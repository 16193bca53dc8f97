"""Syslog receivers for tests: real UDP, TCP and TLS sockets on loopback, and a CEF/syslog parser.

The parser is written from the specifications (CEF, RFC 5424, RFC 3164, RFC 6587), not
from the code under test, so a test that round-trips a value through it checks the escaping.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

SENTINEL = b"--end-of-test-datagrams--"
SO_RCVBUFFORCE = 33  # Linux; Python's socket module does not name it


@dataclass
class Cef:
    """One parsed CEF event: the seven header fields and the extensions, all unescaped."""

    vendor: str
    product: str
    version: str
    signature: str
    name: str
    severity: int
    extensions: dict[str, str] = field(default_factory=dict)


def parse_cef(text: str) -> Cef:
    """Parse ``CEF:0|vendor|product|version|signature|name|severity|extensions``."""
    assert text.startswith("CEF:0|"), text
    fields, rest = [], text[len("CEF:0|"):]
    for _ in range(6):
        match = re.match(r"((?:\\.|[^\\|])*)\|", rest)
        assert match, f"malformed CEF header: {text!r}"
        fields.append(re.sub(r"\\(.)", r"\1", match.group(1)))
        rest = rest[match.end():]
    extensions = {}
    for match in re.finditer(r"(\w+)=((?:\\.|[^\\])*?)(?= \w+=|$)", rest):
        extensions[match.group(1)] = re.sub(
            r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), match.group(2)
        )
    return Cef(*fields[:5], int(fields[5]), extensions)


@dataclass
class Syslog:
    """One parsed syslog message: its style, priority, host, app name, process id and the message."""

    style: str
    priority: int
    timestamp: str
    hostname: str
    app: str
    procid: str
    message: str


_RFC5424 = re.compile(r"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) - - (.*)$", re.S)
_RFC3164 = re.compile(r"^<(\d{1,3})>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (\S+) ([^\s\[]+)\[(\d+)\]: (.*)$", re.S)


def parse_syslog(text: str) -> Syslog:
    """Parse an RFC 5424 or RFC 3164 message (as phishme-intel sends them: no structured data)."""
    if match := _RFC5424.match(text):
        priority, stamp, host, app, procid, message = match.groups()
        return Syslog("rfc5424", int(priority), stamp, host, app, procid, message)
    if match := _RFC3164.match(text):
        priority, stamp, host, app, procid, message = match.groups()
        return Syslog("rfc3164", int(priority), stamp, host, app, procid, message)
    raise AssertionError(f"not a syslog message: {text!r}")


class UdpListener:
    """A UDP socket on 127.0.0.1 read by a thread; :meth:`messages` returns all datagrams so far."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A large receive buffer, so that a burst sent while this reader waits for the GIL on a
        # busy machine is queued, not dropped (SO_RCVBUFFORCE passes rmem_max when root).
        for option in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.SOL_SOCKET, option, 16 * 1024 * 1024)
                break
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self._received: list[str] = []
        self._sentinels = 0
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.socket.recv(70000)
            except OSError:
                return
            with self._condition:
                if data == SENTINEL:
                    self._sentinels += 1
                else:
                    self._received.append(data.decode())
                self._condition.notify_all()

    def messages(self) -> list[str]:
        """Every datagram received, after all those already sent to it have been read."""
        with self._condition:
            expected = self._sentinels + 1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.sendto(SENTINEL, ("127.0.0.1", self.port))
        with self._condition:
            assert self._condition.wait_for(lambda: self._sentinels >= expected, timeout=10)
            return list(self._received)

    def close(self) -> None:
        self.socket.close()


class TcpListener:
    """A TCP (or, with ``tls``, TLS) listener on 127.0.0.1 that records framed messages per connection.

    ``framing`` is ``octet`` (RFC 6587 octet counting) or ``lf``.
    """

    def __init__(self, framing: str = "octet", tls: ssl.SSLContext | None = None) -> None:
        self.framing, self.tls = framing, tls
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[list[str]] = []
        self.errors: list[str] = []
        self._open = 0
        self._probes: set[tuple[str, int]] = set()
        self._streams: list[socket.socket] = []
        self._condition = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, peer = self.server.accept()
            except OSError:
                return
            with self._condition:
                if peer in self._probes:
                    self._probes.discard(peer)
                    self._condition.notify_all()
                    connection.close()
                    continue
                received: list[str] = []
                self.connections.append(received)
                self._open += 1
            threading.Thread(target=self._serve, args=(connection, received), daemon=True).start()

    def _serve(self, connection: socket.socket, received: list[str]) -> None:
        stream = connection
        try:
            stream = (  # a TLS end without close_notify is an error here, as it is for syslog-ng
                self.tls.wrap_socket(connection, server_side=True, suppress_ragged_eofs=False)
                if self.tls else connection
            )
            with self._condition:
                self._streams.append(stream)
            buffer = b""
            while data := stream.recv(65536):
                buffer += data
                with self._condition:
                    buffer = self._frames(buffer, received)
                    self._condition.notify_all()
        except (OSError, ValueError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with self._condition:
                if stream in self._streams:
                    self._streams.remove(stream)
                self._open -= 1
                self._condition.notify_all()
            stream.close()

    def _frames(self, buffer: bytes, received: list[str]) -> bytes:
        while True:
            if self.framing == "lf":
                line, newline, rest = buffer.partition(b"\n")
                if not newline:
                    return buffer
                received.append(line.decode())
                buffer = rest
                continue
            length, space, rest = buffer.partition(b" ")
            if not space:
                return buffer
            assert length.isdigit(), f"not an octet count: {length[:20]!r}"
            if len(rest) < int(length):
                return buffer
            received.append(rest[:int(length)].decode())
            buffer = rest[int(length):]

    def messages(self) -> list[str]:
        """Every message of every connection, once the client has closed them all."""
        self._accept_all()
        with self._condition:
            assert self._condition.wait_for(lambda: not self._open, timeout=10), "a connection stayed open"
            return [message for received in self.connections for message in received]

    def _accept_all(self) -> None:
        """Return once every connection made so far has been accepted: accepts are in order, so a probe's is last."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            address = probe.getsockname()
            with self._condition:
                self._probes.add(address)
            probe.connect(("127.0.0.1", self.port))
            with self._condition:
                assert self._condition.wait_for(lambda: address not in self._probes, timeout=10)

    def wait_for(self, count: int) -> None:
        """Block until ``count`` messages have arrived, over all connections."""
        with self._condition:
            assert self._condition.wait_for(
                lambda: sum(map(len, self.connections)) >= count, timeout=10
            ), f"expected {count} messages, got {sum(map(len, self.connections))}"

    def drop_connections(self) -> None:
        """Close every open connection from the receiver's side, as a restarting receiver does."""
        with self._condition:
            clients = {stream.getpeername()[1] for stream in self._streams}
            for stream in self._streams:
                stream.shutdown(socket.SHUT_RDWR)
            assert self._condition.wait_for(lambda: not self._open, timeout=10)
        deadline = time.monotonic() + 10
        while established(clients):  # the client's socket has taken the FIN once it leaves ESTABLISHED
            assert time.monotonic() < deadline, f"the FIN did not reach the client ports {sorted(clients)}"
            time.sleep(0.001)

    def close(self) -> None:
        self.server.close()


def established(ports: set[int]) -> bool:
    """Whether a local IPv4 TCP socket on one of ``ports`` is still ESTABLISHED (``/proc/net/tcp`` state 01)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return any(int(row[1].rsplit(":", 1)[1], 16) in ports and row[3] == "01" for row in rows)


def refused_port() -> int:
    """A loopback TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
