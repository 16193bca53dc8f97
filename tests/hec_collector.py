"""A stand-in for Splunk's HTTP Event Collector (HEC) on 127.0.0.1, indexer acknowledgement included."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from phishme_intel.models import ThreatRef

TOKEN = "5f2c8e1a-hec-s3cr3t-token"


class Collector(ThreadingHTTPServer):
    """A stand-in for Splunk's HEC: checks path, token and body, keeps every accepted event.

    ``faults`` is a list of HTTP statuses to answer (with ``Retry-After: 0``) before accepting.
    With ``acks`` (indexer acknowledgement on for the token) every accepted request gets an
    ``ackId``, and ``/services/collector/ack`` answers, per id of the request's channel, false
    for the first ``unconfirmed_polls`` polls and true after that (never, with ``never_confirm``).
    """

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), CollectorHandler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.requests: list[dict] = []
        self.events: list[dict] = []
        self.faults: list[int] = []
        self.lock = threading.Lock()
        self.acks = False
        self.unconfirmed_polls = 0
        self.never_confirm = False
        self.ack_ids: dict[str, list[int]] = {}  # channel -> ackIds given
        self.confirmed: set[int] = set()
        self.ack_polls = 0

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://localhost:{self.server_address[1]}"

    def held(self) -> set[ThreatRef]:
        """What a search sees: threats whose latest threat event is an upsert."""
        latest: dict[ThreatRef, str] = {}
        for event in (e["event"] for e in self.events if e["event"]["event_type"] == "threat"):
            latest[ThreatRef(event["threat_type"], event["threat_id"])] = event["action"]
        return {ref for ref, action in latest.items() if action == "upsert"}


class CollectorHandler(BaseHTTPRequestHandler):
    server: Collector
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: with Nagle, each answer waited ~40 ms

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            fault = self.server.faults.pop(0) if self.server.faults else None
        if self.path not in ("/services/collector/event", "/services/collector/ack"):
            return self.answer(404, "The requested URL was not found on this server.", 404)
        if self.headers.get("Authorization") != f"Splunk {TOKEN}":
            return self.answer(403, "Invalid token", 4)
        channel = self.headers.get("X-Splunk-Request-Channel")
        if not channel:
            return self.answer(400, "Data channel is missing", 10)
        if fault is not None:
            return self.answer(fault, "Server is busy", 9, {"Retry-After": "0"})
        if self.path == "/services/collector/ack":
            return self.acknowledge(channel, body)
        try:
            events = parse_events(body.decode("utf-8"))
        except ValueError as exc:
            return self.answer(400, f"Invalid data format: {exc}", 6)
        with self.server.lock:
            self.server.events.extend(events)
            if not self.server.acks:
                return self.answer(200, "Success", 0)
            given = self.server.ack_ids.setdefault(channel, [])
            given.append(len(given))
        self.answer(200, "Success", 0, ack=given[-1])

    def acknowledge(self, channel, body):
        if not self.server.acks:
            return self.answer(400, "ACK is disabled", 14)
        asked = json.loads(body)["acks"]
        with self.server.lock:
            self.server.ack_polls += 1
            done = not self.server.never_confirm and self.server.ack_polls > self.server.unconfirmed_polls
            known = self.server.ack_ids.get(channel, [])
            answer = {str(ack): done and ack in known for ack in asked}
            self.server.confirmed |= {ack for ack in asked if answer[str(ack)]}
        self.reply(200, {"acks": answer})

    def answer(self, status, text, code, headers=None, ack=None):
        self.reply(status, {"text": text, "code": code, **({} if ack is None else {"ackId": ack})}, headers)

    def reply(self, status, answer, headers=None):
        data = json.dumps(answer).encode()
        self.send_response(status)
        for name, value in {**(headers or {}), "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def parse_events(body: str) -> list[dict]:
    """Concatenated JSON event objects, as HEC's /event endpoint takes them; ValueError if malformed."""
    decoder, events, at = json.JSONDecoder(), [], 0
    while at < len(body.rstrip()):
        while body[at].isspace():
            at += 1
        event, at = decoder.raw_decode(body, at)
        if not isinstance(event, dict) or "event" not in event or not isinstance(event.get("time"), (int, float)):
            raise ValueError(f"event {len(events)} lacks event or time")
        events.append(event)
    return events


class serving:
    def __init__(self, server: Collector) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Collector:
        self.thread.start()
        return self.server

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


