"""``[integration_cef_syslog]``: CEF events over syslog, for ArcSight, QRadar, McAfee ESM, LogRhythm.

Each delivered threat becomes one CEF event per indicator, after the vendor's mapping (see
:mod:`phishme_intel.adapters.cef`), behind an RFC 5424 or RFC 3164 syslog header (or none),
sent over UDP, TCP or TLS, or appended to a file (see :mod:`._syslog`).
At most ``max_eps`` events leave per second.

A withdrawal emits a removal event per threat (signature ``threat_removed``, ``act=remove``,
the threat's ``externalId``): the receiver drops what it holds for that product and
``externalId``. A replayed delivery sends the same events again; a receiver that keys on
product, ``externalId`` and the indicator (an ArcSight active list, a QRadar reference
table) absorbs it.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import AdapterError
from ..files import writable_file_problem
from ..models import Threat, ThreatRef
from ..options import Option, choice, integer, number, path, text
from ..retry import Throttle
from ._cef import UNSENT_KINDS, Event, removal_event, threat_events
from ._syslog import (
    FACILITIES,
    FileTransport,
    Headers,
    TcpTransport,
    Transport,
    UdpTransport,
    syslog_severity,
)
from .base import Adapter

DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}
SEND_BUFFER = 65536
#: The syslog severity of each CEF severity (0-10, the index).
SYSLOG_SEVERITIES = tuple(syslog_severity(severity) for severity in range(11))


class CefSyslogAdapter(Adapter):
    """Sends CEF events per indicator over syslog (UDP, TCP, TLS) or to a file; withdrawal emits a removal event."""

    name = "cef_syslog"
    options = (
        Option("transport", choice("udp", "tcp", "tls", "file"), "tcp"),
        Option("host", text, None),
        Option("port", integer(1, 65535), None),
        Option("framing", choice("octet", "lf"), "octet"),
        Option("ca_bundle", path, None),
        Option("client_cert", path, None),
        Option("client_key", path, None),
        Option("file", path, "phishme_intel.cef"),
        Option("header", choice("rfc5424", "rfc3164", "none"), "rfc5424"),
        Option("facility", choice(*FACILITIES), "local0"),
        Option("hostname", text, None),
        Option("vendor", text, "Cofense"),
        Option("max_eps", number(0, 1_000_000), 0.0),
        Option("timeout", number(1, 600), 10.0),
    )

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> list[str]:
        transport = settings["transport"]
        problems = []
        if transport == "file":
            if problem := writable_file_problem(settings["file"]):
                problems.append(f"file: {problem}")
        elif transport and not settings["host"]:
            problems.append(f"host: is required when transport is {transport}")
        for key in ("ca_bundle", "client_cert", "client_key"):
            if settings[key] and not os.path.isfile(settings[key]):
                problems.append(f"{key}: {settings[key]} is not a readable file")
        if settings["client_key"] and not settings["client_cert"]:
            problems.append("client_key: is set but client_cert is empty")
        if transport == "tls" and not problems:
            try:
                tls_context(settings)
            except (OSError, ValueError) as exc:
                problems.append(f"client_cert: cannot load the certificate and key: {describe(exc)}")
        hostname = settings["hostname"]
        if hostname and not (hostname.isprintable() and " " not in hostname):
            problems.append("hostname: must be one word of printable characters")
        return problems

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.vendor: str = settings["vendor"]
        self.header: str = settings["header"]
        self.facility: int = FACILITIES[settings["facility"]]
        self.hostname: str = settings["hostname"] or socket.gethostname() or "-"
        self.pacer = Throttle(settings["max_eps"])
        self._transport: Transport | None = None
        self._headers = Headers(self.header, self.facility, self.hostname)

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise AdapterError(self.name, "used before open()")
        return self._transport

    def open(self) -> None:
        try:
            transport = make_transport(self.settings)
        except (OSError, ValueError) as exc:
            raise AdapterError(self.name, f"cannot set up TLS: {describe(exc)}") from None
        try:
            transport.open()
        except (OSError, ValueError) as exc:
            transport.close()
            raise AdapterError(self.name, f"cannot open {transport.destination}: {describe(exc)}") from None
        self._transport = transport
        self._headers = Headers(self.header, self.facility, self.hostname)  # this process's id, after any fork

    def deliver(self, threats: Sequence[Threat]) -> None:
        debug = self.log.isEnabledFor(logging.DEBUG)
        for threat in threats:
            events = threat_events(threat)
            if debug:
                self._note_unsent(threat, events)
            self._send(events)
        self._push()

    def _note_unsent(self, threat: Threat, events: list[Event]) -> None:
        unsent = sum(1 for indicator in threat.indicators if indicator.kind in UNSENT_KINDS)
        if unsent or not events:
            self.log.debug("%s %d: %d events; %d subject and sender indicators have no CEF event",
                           threat.kind, threat.id, len(events), unsent)

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        self._send([removal_event(ref) for ref in refs])
        self._push()

    def commit(self) -> None:
        try:
            self.transport.flush()
        except OSError as exc:
            raise AdapterError(self.name, f"cannot deliver to {self.transport.destination}: {describe(exc)}") from None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _push(self) -> None:
        """Write what the transport buffered: a batch's events leave by the end of its delivery."""
        try:
            self.transport.push()
        except OSError as exc:
            raise AdapterError(self.name, f"cannot send to {self.transport.destination}: {describe(exc)}") from None

    def _send(self, events: Sequence[Event]) -> None:
        """Send the events, each behind its syslog header (made when it leaves, after any wait for ``max_eps``)."""
        try:
            if self.pacer.interval:
                for event in events:
                    self.pacer.wait()
                    self.transport.send(self._lines((event,)))
            else:
                self.transport.send(self._lines(events))
        except OSError as exc:
            raise AdapterError(self.name, f"cannot send to {self.transport.destination}: {describe(exc)}") from None

    def _lines(self, events: Sequence[Event]) -> list[str]:
        headers, vendor = self._headers.of_each, self.vendor
        return [event.format(vendor, headers()[SYSLOG_SEVERITIES[event.severity]]) for event in events]


def make_transport(settings: Mapping[str, Any]) -> Transport:
    """The transport ``settings`` describe (not yet open)."""
    kind = settings["transport"]
    if kind == "file":
        return FileTransport(settings["file"])
    port = settings["port"] or DEFAULT_PORTS[kind]
    if kind == "udp":
        return UdpTransport(settings["host"], port)
    tls = tls_context(settings) if kind == "tls" else None
    buffer = 0 if settings["max_eps"] else SEND_BUFFER  # paced events leave one by one
    return TcpTransport(settings["host"], port, settings["timeout"], settings["framing"], tls, buffer)


def tls_context(settings: Mapping[str, Any]) -> ssl.SSLContext:
    """A client context: TLS 1.2 or later, the receiver verified against ``ca_bundle`` (or the system CAs)."""
    context = ssl.create_default_context(cafile=settings["ca_bundle"])
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings["client_cert"]:
        context.load_cert_chain(settings["client_cert"], settings["client_key"])
    return context


def describe(exc: BaseException) -> str:
    """A failure in words: ``Connection refused``, ``TLS: certificate verify failed: ...``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
