"""The simulator's HTTP server: authentication, latency, faults, holding, statistics, control endpoints.

A test can hold requests (:meth:`Simulator.hold`): the client waits, unanswered, until the test
releases them, so "the run is still at its Nth request" is an event, not a guess about time.

API paths live under ``/apiv1`` and need HTTP Basic authentication. Parameters are read from
the query string and from a form-encoded body, merged. Control endpoints (no authentication,
not recorded, no latency, no faults) serve tests and benchmarks that run the simulator as a
separate process:

- ``POST /_sim/mutate?republish=N&delete=N&add_malware=N&add_phish=N``: what changed;
- ``GET /_sim/stats``: ``{"requests", "connections", "by_path", "live"}``;
- ``POST /_sim/fault?kind=..&times=..&path=..&retry_after=..&seconds=..&size=..``: queue a fault;
- ``POST /_sim/reset_stats``: forget recorded requests and connections.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .api import Answer, Api, Params, error, first_param, json_answer
from .dataset import Dataset
from .faults import Fault, FaultQueue

_PREFIX = "/apiv1"
_UNAUTHORIZED = error(401, "unauthorized", (("WWW-Authenticate", 'Basic realm="ThreatHQ"'),))


@dataclass(frozen=True)
class RequestRecord:
    """One API request as the simulator saw it.

    ``time`` is its arrival (``time.monotonic()``), ``path`` is without ``/apiv1``, and
    ``status`` is 0 when no answer was sent (faults ``reset`` and ``truncate``).
    """

    time: float
    method: str
    path: str
    params: dict[str, list[str]]
    status: int


class Simulator:
    """A running fake of the Cofense Intelligence API over real loopback HTTP."""

    def __init__(
        self,
        dataset: Dataset,
        user: str = "user",
        password: str = "secret",
        latency: float = 0.0,
        updates_page_size: int = 1000,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.dataset = dataset
        self.latency = latency
        self.faults = FaultQueue()
        self._api = Api(dataset, updates_page_size)
        self._credentials = (user.encode(), password.encode())
        self._address = (host, port)
        self._lock = threading.Lock()
        self._gate = threading.Condition(self._lock)
        self._holding = False
        self._let_through = 0
        self._held = 0
        self._requests: list[RequestRecord] = []
        self._connections = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle --

    def start(self) -> Simulator:
        """Listen and serve in a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._stopping.clear()
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="phishme-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake stalled answers and close every open connection."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        self._stopping.set()
        with self._gate:
            self._gate.notify_all()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:PORT/apiv1``."""
        if self._server is None:
            raise RuntimeError("simulator not started")
        return f"http://{self._address[0]}:{self._server.server_port}{_PREFIX}"

    # -- statistics --

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the API requests recorded so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """TCP connections that carried at least one API request (control requests do not count)."""
        with self._lock:
            return self._connections

    def reset_stats(self) -> None:
        """Forget recorded requests and the connection count."""
        with self._lock:
            self._requests.clear()
            self._connections = 0

    def stats(self) -> dict[str, Any]:
        """Counts of requests (in total and by path), connections and live threats."""
        with self._lock:
            by_path = Counter(record.path for record in self._requests)
            return {
                "requests": len(self._requests),
                "connections": self._connections,
                "by_path": by_path,
                "live": len(self.dataset),
            }

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    # -- holding requests --

    def hold(self, after: int = 0) -> None:
        """Let ``after`` more API requests through, then keep each later one waiting until :meth:`release`."""
        with self._gate:
            self._holding, self._let_through = True, after

    def release(self) -> None:
        """Answer the held requests, and hold no more."""
        with self._gate:
            self._holding = False
            self._gate.notify_all()

    def wait_until_held(self, count: int = 1, timeout: float = 60.0) -> bool:
        """Whether ``count`` requests are being held, waiting at most ``timeout`` seconds for them."""
        with self._gate:
            return self._gate.wait_for(lambda: self._held >= count, timeout)

    def _pass_gate(self) -> None:
        """Return at once, or once released when holding (or when the simulator stops)."""
        with self._gate:
            if not self._holding:
                return
            if self._let_through > 0:
                self._let_through -= 1
                return
            self._held += 1
            self._gate.notify_all()
            self._gate.wait_for(lambda: not self._holding or self._stopping.is_set())
            self._held -= 1

    # -- answers --

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (a dripping answer gives up)."""
        return self._stopping.is_set()

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the simulator stops meanwhile."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def api_answer(self, method: str, path: str, params: Params, authorization: str | None) -> Answer:
        """The answer to an API request (``path`` without ``/apiv1``), checking credentials."""
        if not self._authorized(authorization):
            return _UNAUTHORIZED
        return self._api.answer(method, path, params)

    def _authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(token.strip(), validate=True).partition(b":")
        except binascii.Error:
            return False
        expected_user, expected_password = self._credentials
        return hmac.compare_digest(user, expected_user) & hmac.compare_digest(password, expected_password)

    def control_answer(self, method: str, path: str, params: Params) -> Answer:
        """The answer to a control request under ``/_sim/``."""
        route = (method, path.rstrip("/"))
        try:
            if route == ("GET", "/_sim/stats"):
                return json_answer(200, self.stats())
            if route == ("POST", "/_sim/mutate"):
                return json_answer(200, self._mutate(params))
            if route == ("POST", "/_sim/fault"):
                return json_answer(200, asdict(self._add_fault(params)))
            if route == ("POST", "/_sim/reset_stats"):
                self.reset_stats()
                return json_answer(200, {"reset": True})
        except ValueError as exc:
            return json_answer(400, {"error": str(exc)})
        return json_answer(404, {"error": f"no control endpoint {method} {path}"})

    def _mutate(self, params: Params) -> dict[str, Any]:
        def count(name: str) -> int:
            return int(first_param(params, name) or 0)

        return {
            "republished": self.dataset.republish(count("republish")),
            "deleted": self.dataset.delete(count("delete")),
            "added": self.dataset.add(malware=count("add_malware"), phish=count("add_phish")),
            "live": len(self.dataset),
        }

    def _add_fault(self, params: Params) -> Fault:
        retry_after, seconds = first_param(params, "retry_after"), first_param(params, "seconds")
        size = first_param(params, "size")
        return self.faults.add(
            first_param(params, "kind") or "",
            times=int(first_param(params, "times") or 1),
            path=first_param(params, "path"),
            retry_after=None if retry_after is None else int(retry_after),
            seconds=None if seconds is None else float(seconds),
            after=int(first_param(params, "after") or 0),
            size=None if size is None else int(size),
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut every open connection down, so idle keep-alive threads end."""
        with self._open_lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """One instance per connection: ``counted`` tells whether it carried an API request yet."""

    protocol_version = "HTTP/1.1"
    server: _Server
    counted = False

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test and benchmark output quiet."""

    def _handle(self, method: str) -> None:
        arrived = time.monotonic()
        simulator = self.server.simulator
        url = urlsplit(self.path)
        params = self._params(url.query)
        if url.path.startswith("/_sim/"):
            self._send(simulator.control_answer(method, url.path, params))
            return
        if not self.counted:
            self.counted = True
            simulator._connected()
        under_api = url.path == _PREFIX or url.path.startswith(_PREFIX + "/")
        path = url.path.removeprefix(_PREFIX) if under_api else url.path
        simulator._pass_gate()
        simulator.pause(simulator.latency)
        fault = simulator.faults.take(path)
        kind = fault.kind if fault else None
        answer = fault.canned() if fault else None
        if answer is None and under_api:
            answer = simulator.api_answer(method, path, params, self.headers.get("Authorization"))
        elif answer is None:
            answer = error(404, "not found")
        if fault is not None:
            answer = fault.transform(answer, params)
        status = 0 if kind in ("reset", "truncate") else answer.status
        simulator._record(RequestRecord(arrived, method, path, params, status))
        try:
            if kind == "reset":
                self._reset()
                return
            if kind == "stall" and fault is not None:
                simulator.pause(fault.seconds or 0.0)
            self._send(answer, truncate=kind == "truncate", drip=fault.seconds if kind == "drip" and fault else None)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _params(self, query: str) -> Params:
        """The query string's parameters, plus those of a form-encoded body."""
        params = parse_qs(query, keep_blank_values=True)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if body and self.headers.get_content_type() in ("application/x-www-form-urlencoded", "text/plain"):
            for name, values in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
                params.setdefault(name, []).extend(values)
        return params

    def _send(self, answer: Answer, truncate: bool = False, drip: float | None = None) -> None:
        """Send ``answer``; ``truncate``: only its first half, then close; ``drip``: a byte every ``drip`` s."""
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        if drip is not None:
            simulator = self.server.simulator
            for at in range(len(answer.body)):
                if simulator.stopping:
                    break
                self.wfile.write(answer.body[at:at + 1])
                self.wfile.flush()
                simulator.pause(drip)
            self.close_connection = True
            return
        self.wfile.write(answer.body[: len(answer.body) // 2] if truncate else answer.body)
        if truncate:
            self.close_connection = True

    def _reset(self) -> None:
        """Close the connection with a TCP RST (SO_LINGER 0), answering nothing."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()
