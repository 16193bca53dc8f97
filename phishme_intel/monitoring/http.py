"""``--listen``: the service's health and metrics over HTTP, for Kubernetes probes and Prometheus.

``GET /healthz`` answers 200 when ``--status`` would say healthy and 503 otherwise, with the
verdict and its reason as one line of text. ``GET /metrics`` serves, through prometheus-client,
the metrics the metrics file holds (read from the status file at each scrape) plus
``phishme_intel_next_run_timestamp_seconds``. Anything else is a 404. The server answers in
threads of its own and never touches the sync's state: it only reads the status file.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import status_file
from .metrics import Family, families

log = logging.getLogger(__name__)
HealthCheck = Callable[[], tuple[bool, str]]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class StatusCollector:
    """The status file's metrics, read at each scrape, and the time of the service's next run."""

    def __init__(self, status_file: str, next_run: Callable[[], float | None]) -> None:
        self.status_file = status_file
        self.next_run = next_run

    def collect(self) -> Iterator[Metric]:
        """The metric families prometheus-client asks for on each scrape of /metrics."""
        try:
            status = status_file.read(self.status_file)
        except status_file.StatusFileError as exc:
            log.warning("/metrics: %s", exc)
            status = None
        for family in families(status) if status else []:
            kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            metric = kind(f"phishme_intel_{family.name}", family.help, labels=_label_names(family))
            for labels, value in family.samples:
                metric.add_metric(list(labels.values()), value)
            yield metric
        yield GaugeMetricFamily(
            "phishme_intel_next_run_timestamp_seconds",
            "When the service starts its next run (Unix time; 0 while a run is under way).",
            value=self.next_run() or 0,
        )


def _label_names(family: Family) -> list[str]:
    return list(family.samples[0][0]) if family.samples else []


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: probes and scrapes come every few seconds."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def application(health: HealthCheck, collector: StatusCollector) -> Callable[[dict[str, Any], StartResponse],
                                                                             Iterable[bytes]]:
    """The WSGI application that serves /healthz and /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    metrics = make_wsgi_app(registry)

    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            healthy, text = health()
            status = "200 OK" if healthy else "503 Service Unavailable"
        else:
            status, text = "404 Not Found", "not found: phishme-intel serves /healthz and /metrics"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [text.encode("utf-8") + b"\n"]

    return serve


@contextmanager
def serving(address: tuple[str, int], health: HealthCheck, collector: StatusCollector) -> Iterator[tuple[str, int]]:
    """Serve /healthz and /metrics on ``address`` for the ``with`` block; yields the address bound.

    Raises OSError when the address cannot be bound (in use, not this machine's).
    """
    host, port = address
    server_class = _Server6 if ":" in host else _Server
    server = make_server(host, port, application(health, collector), server_class, _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.2,), name="phishme-intel-http", daemon=True)
    thread.start()
    try:
        yield server.server_address[0], server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
