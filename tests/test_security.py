"""Secrets stay secret, TLS is verified, and nothing from outside reaches a request or config.ini unchecked.

- The API password, the proxy password and adapter tokens never appear in the log (at
  ``log_level = debug``, with every simulator fault, through a real authenticating proxy),
  in ``--check`` output, on stderr or in the text and traceback of a raised error; nor
  does the base64 form HTTP Basic sends, even when a server echoes the request back.
- TLS verification is on by default: a server whose certificate a private CA signed is
  refused until ``ca_bundle`` names that CA (a real TLS listener, certificates by trustme).
- A config.ini readable by group or others gives a warning naming ``chmod 600``.
- Running as root is refused unless ``--allow-root`` says otherwise.
- A position the API sends is checked before it goes into config.ini (one stored in
  config.ini is checked before it goes into a request: ``test_bad_config.py``).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import trustme
from configupdater import ConfigUpdater
from listeners import refused_port
from support import PASSWORD, ROOT, USER, run_cli, store, write_config

from phishme_intel import adapters, commands
from phishme_intel import config as config_module
from phishme_intel.errors import Error
from phishme_intel.options import secret
from phishme_intel.simulator import Dataset, Simulator

PROXY_USER = "proxy-user"
PROXY_PASSWORD = "pr0xy:P@ss/w%rd&"  # every character that URL-encoding changes
TOKEN = "hec-T0ken-5ecret-0000"
PG_PASSWORD = "pg-Pa55word-5ecret-0000"
TAXII_USER, TAXII_PASSWORD = "taxii-sync", "taxii:P@ss/w%rd&"


def forms(user: str, secret: str) -> list[str]:
    """The ways a secret can leak: as is, URL-encoded, and inside an HTTP Basic header."""
    return [secret, quote(secret, safe=""), base64.b64encode(f"{user}:{secret}".encode()).decode()]


SECRETS = [
    *forms(USER, PASSWORD), *forms(PROXY_USER, PROXY_PASSWORD), TOKEN, PG_PASSWORD, *forms(TAXII_USER, TAXII_PASSWORD),
]


def assert_no_secret(*texts: str) -> None:
    for hidden in SECRETS:
        for text in texts:
            assert hidden not in text


def everything_written(folder: Path) -> str:
    """Every file a run left in ``folder`` (log, status file, metrics...), as text."""
    return "".join(
        path.read_bytes().decode("utf-8", "replace")
        for path in folder.rglob("*")
        if path.is_file() and path.suffix not in (".sqlite3", ".ini") and "-wal" not in path.name
    )


# -- helper servers: a forward proxy that wants HTTP Basic credentials, and a server that echoes --


class _Server(ThreadingHTTPServer):
    """With ``echo``, every answer is an error page quoting the request's headers (as some proxies
    send); else a forward proxy for plain HTTP that wants PROXY_USER and PROXY_PASSWORD."""

    daemon_threads = True

    def __init__(self, echo: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.echo = echo
        self.relayed = 0
        self.url = f"http://127.0.0.1:{self.server_port}"
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        credentials = "Basic " + base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
        if self.server.echo:
            quoted = "".join(f"{name}: {value}\n" for name, value in sorted(self.headers.items(), key=_secret_first))
            self._answer(400, f"<pre>{quoted}</pre><h1>400 Bad Request</h1>".encode(), "text/html")
        elif self.headers.get("Proxy-Authorization") != credentials:
            self._answer(407, b"proxy authentication required", "text/plain")
        else:
            self.server.relayed += 1
            self._relay(body)

    def _relay(self, body: bytes) -> None:
        target = urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-authorization", "connection")}
        try:
            upstream.request(self.command, f"{target.path}?{target.query}", body=body, headers=headers)
            answer = upstream.getresponse()
            self._answer(answer.status, answer.read(), answer.getheader("Content-Type", "text/plain"))
        except (OSError, http.client.HTTPException):
            self._answer(502, b"bad gateway", "text/plain")
        finally:
            upstream.close()

    def _answer(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _secret_first(header: tuple[str, str]) -> bool:
    return header[0].lower() not in ("authorization", "proxy-authorization")


@pytest.fixture
def proxy() -> Iterator[_Server]:
    server = _Server(echo=False)
    yield server
    server.close()


@pytest.fixture
def echo() -> Iterator[str]:
    server = _Server(echo=True)
    yield server.url
    server.close()


def proxied_config(folder: Path, simulator: Simulator, proxy: _Server, password: str = PROXY_PASSWORD) -> Path:
    return write_config(
        folder, simulator.url,
        pm_api={"max_retries": "2", "retry_backoff": "0.01", "timeout": "1", "concurrency": "1"},
        local_log={"log_level": "debug"},
        local_proxy={"use": "True", "http": proxy.url, "https": "",
                     "auth_basic_use": "True", "auth_basic_user": PROXY_USER, "auth_basic_pass": password},
    )


FAULTS = ["429", "500", "502", "503", "outage", "reset", "truncate", "stall", "invalid_json", "success_false"]


@pytest.mark.parametrize("kind", FAULTS)
def test_no_secret_reaches_the_debug_log_or_stderr_whatever_the_api_does(tmp_path, simulator, proxy, kind):
    config = proxied_config(tmp_path, simulator, proxy)
    simulator.faults.add(kind, times=1000, seconds=1.5 if kind == "stall" else None)  # every request fails

    result = run_cli(config, "-v")

    assert result.returncode == 69, result.stderr
    assert proxy.relayed == len(simulator.requests) >= 3
    assert "DEBUG" in everything_written(tmp_path)
    assert_no_secret(everything_written(tmp_path), result.stdout, result.stderr)


@pytest.mark.parametrize("args", [[], ["--check"]], ids=["sync", "check"])
@pytest.mark.parametrize("password", [PROXY_PASSWORD, "wrong-" + PROXY_PASSWORD], ids=["proxy-password", "wrong"])
def test_no_secret_in_the_output_of_a_sync_or_check_through_the_proxy(tmp_path, simulator, proxy, args, password):
    config = proxied_config(tmp_path, simulator, proxy, password)

    result = run_cli(config, *args, "-v")

    right = password == PROXY_PASSWORD
    assert result.returncode == (0 if right else 69), result.stderr
    assert proxy.relayed == len(simulator.requests) and (proxy.relayed > 0) is right
    assert_no_secret(everything_written(tmp_path), result.stdout, result.stderr)


def _raised(config: Path) -> Error:
    with pytest.raises(Error) as failure:
        commands.run(str(config))
    return failure.value


def assert_adapter_failure_keeps_the_secret(config: Path, folder: Path, said: str) -> None:
    """A run whose adapter fails (exit 74, ``said`` on stderr) and ``--check`` after it (exit 0):
    no secret in what they printed, in any file under ``folder``, in the error or its traceback."""
    result = run_cli(config, "-v")
    failure = _raised(config)
    checked = run_cli(config, "--check", "-v")

    assert result.returncode == 74, result.stderr
    assert said in result.stderr
    assert checked.returncode == 0, checked.stderr
    assert_no_secret(
        everything_written(folder), result.stdout, result.stderr, checked.stdout, checked.stderr,
        str(failure), "".join(traceback.format_exception(failure)),
    )


def test_raised_errors_and_their_tracebacks_hold_no_secret(tmp_path, simulator, proxy):
    failures = []
    proxy_down = proxied_config(tmp_path, simulator, proxy)
    updater = ConfigUpdater()
    updater.read(proxy_down)
    updater["local_proxy"]["http"] = f"http://127.0.0.1:{refused_port()}"
    updater.update_file()
    failures.append(_raised(proxy_down))
    (tmp_path / "wrong").mkdir()
    failures.append(_raised(proxied_config(tmp_path / "wrong", simulator, proxy, "nope")))
    (tmp_path / "faulty").mkdir()
    simulator.faults.add("reset", times=3)
    failures.append(_raised(proxied_config(tmp_path / "faulty", simulator, proxy)))

    assert [type(failure).__name__ for failure in failures] == ["ApiUnavailable", "ApiResponseError", "ApiUnavailable"]
    for failure in failures:
        assert_no_secret(str(failure), "".join(traceback.format_exception(failure)))


def test_an_api_that_echoes_the_request_does_not_leak_the_credentials(tmp_path, echo):
    config = write_config(tmp_path, f"{echo}/apiv1", local_log={"log_level": "debug"})

    result = run_cli(config, "-v")
    failure = _raised(config)

    assert result.returncode == 69, result.stderr
    assert "HTTP 400" in result.stderr
    assert_no_secret(everything_written(tmp_path), result.stdout, result.stderr, str(failure))


def test_an_adapter_token_echoed_by_its_collector_stays_secret(tmp_path, simulator, echo):
    config = write_config(
        tmp_path, simulator.url, local_log={"log_level": "debug"},
        integration_splunk_hec={"use": "True", "url": echo, "token": TOKEN, "max_retries": "0"},
    )

    assert_adapter_failure_keeps_the_secret(config, tmp_path, "splunk_hec")


def test_a_postgresql_password_the_server_refuses_stays_secret(tmp_path, simulator, postgres):
    config = write_config(
        tmp_path, simulator.url, local_log={"log_level": "debug"}, integration_sqlite={"use": "False"},
        integration_postgresql={"use": "True", "conninfo": postgres.conninfo(), "pass": PG_PASSWORD},
    )

    assert_adapter_failure_keeps_the_secret(config, tmp_path, "password authentication failed")


def test_a_taxii_password_echoed_by_its_server_stays_secret(tmp_path, simulator, echo):
    config = write_config(
        tmp_path, simulator.url, local_log={"log_level": "debug"},
        integration_stix2={"use": "True", "folder": str(tmp_path / "stix2"), "taxii_url": echo,
                           "taxii_collection": "intel", "taxii_user": TAXII_USER, "taxii_password": TAXII_PASSWORD,
                           "taxii_max_retries": "0"},
    )

    assert_adapter_failure_keeps_the_secret(config, tmp_path, "adapter stix2")


def test_the_adapters_that_hold_a_secret_are_the_ones_tested_here():
    holding = {name for name in adapters.available() if any(o.parse is secret for o in adapters.load(name).options)}

    assert holding == {"splunk_hec", "postgresql", "stix2"}, "give every adapter with a token a test like those above"


# -- TLS --


class TlsFront(socketserver.ThreadingTCPServer):
    """A real TLS listener with ``certificate``, relaying each connection to ``backend``."""

    daemon_threads = True

    def __init__(self, certificate: trustme.LeafCert, backend: str) -> None:
        super().__init__(("127.0.0.1", 0), _TlsRelay)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        certificate.configure_cert(self.context)
        self.backend = urlsplit(backend)
        self.port = self.server_address[1]
        self.handshakes_failed = 0
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _TlsRelay(socketserver.BaseRequestHandler):
    server: TlsFront

    def handle(self) -> None:
        try:
            secured = self.server.context.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):
            self.server.handshakes_failed += 1
            return
        backend = socket.create_connection((self.server.backend.hostname, self.server.backend.port))
        threading.Thread(target=_pump, args=(backend, secured), daemon=True).start()
        _pump(secured, backend)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


def tls_config(folder: Path, front: TlsFront, **pm_api: str) -> Path:
    return write_config(folder, f"https://127.0.0.1:{front.port}/apiv1", pm_api={"max_retries": "1", **pm_api})


@pytest.mark.parametrize(
    ("bundle", "host", "refusal"),
    [(None, "127.0.0.1", "is not trusted"), ("another CA", "127.0.0.1", "is not trusted"),
     ("the CA", "api.example.com", "is for another host name")],
    ids=["no-ca_bundle", "ca_bundle-of-another-ca", "certificate-for-another-host"],
)
def test_tls_is_verified_by_default_and_an_unproven_server_is_refused(tmp_path, simulator, ca, bundle, host, refusal):
    if bundle is not None:
        (ca if bundle == "the CA" else trustme.CA()).cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    front = TlsFront(ca.issue_cert(host), simulator.url)
    config = tls_config(tmp_path, front, **({"ca_bundle": "ca.pem"} if bundle else {}))
    assert "ssl_verify = True" in config.read_text()
    try:
        result, checked = run_cli(config), run_cli(config, "--check")
    finally:
        front.close()

    assert result.returncode == checked.returncode == 69
    assert f"the TLS certificate of 127.0.0.1 {refusal}" in result.stderr
    assert simulator.requests == []
    assert front.handshakes_failed >= 2


def test_ca_bundle_naming_the_servers_ca_lets_the_sync_through(tmp_path, simulator, ca, dataset):
    ca.cert_pem.write_to_path(str(tmp_path / "private-ca.pem"))
    front = TlsFront(ca.issue_cert("127.0.0.1"), simulator.url)
    try:
        result = run_cli(tls_config(tmp_path, front, ca_bundle="private-ca.pem"))
    finally:
        front.close()

    assert result.returncode == 0, result.stderr
    assert store(tmp_path / "phishme_intel.sqlite3")["threats"] == dataset.live_ids()
    assert front.handshakes_failed == 0


# -- permissions and root --


@pytest.mark.parametrize(
    ("mode", "warned"), [(0o644, True), (0o640, True), (0o604, True), (0o660, True), (0o600, False), (0o400, False)],
    ids=lambda value: oct(value) if isinstance(value, int) and not isinstance(value, bool) else None,
)
def test_a_config_readable_by_others_gives_a_warning_naming_chmod_600(tmp_path, simulator, mode, warned):
    config = write_config(tmp_path, simulator.url)
    config.chmod(mode)

    checked = run_cli(config, "--check")
    ran = run_cli(config)

    assert checked.returncode == 0 and ran.returncode == 0, checked.stderr + ran.stderr
    assert (f"chmod 600 {config}" in checked.stderr) is warned
    assert (f"chmod 600 {config}" in (tmp_path / "phishme_intel.log").read_text()) is warned


@pytest.mark.skipif(os.geteuid() != 0, reason="only a run as root is refused")
@pytest.mark.parametrize("flags", [[], ["--check"], ["--verbose"]])
def test_running_as_root_is_refused_before_anything_happens(tmp_path, simulator, flags):
    config = write_config(tmp_path, simulator.url)
    before = sorted(tmp_path.iterdir()), config.read_bytes()

    result = subprocess.run(
        [sys.executable, str(ROOT / "phishme_to_product.py"), "-conf", str(config), *flags],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )

    assert result.returncode == 77
    assert "--allow-root" in result.stderr and "Traceback" not in result.stderr
    assert (sorted(tmp_path.iterdir()), config.read_bytes()) == before
    assert simulator.requests == []


# -- positions --

INJECTION = "\n[local_log]\nlog_file = /tmp/phishme-intel-injected.log"


class MangledPositions(Dataset):
    """An updates feed that sends ``mangle(position)`` as nextPosition."""

    def __init__(self, mangle: Callable[[str], str]) -> None:
        super().__init__(seed=3, malware=30, phish=5, days=5)
        self.mangle = mangle

    def updates_since(self, timestamp_ms: int, limit: int) -> tuple[list[Any], str]:
        changes, position = super().updates_since(timestamp_ms, limit)
        return changes, self.mangle(position)


@pytest.mark.parametrize(
    "mangle",
    [lambda p: p + INJECTION, lambda p: p + "&page=7", lambda p: "not-a-position", lambda p: p.replace("-", "-\n")],
    ids=["ini-lines-after-the-uuid", "query-after-the-uuid", "not-a-uuid", "line-breaks"],
)
def test_a_position_the_api_sends_is_checked_before_it_goes_into_config(tmp_path, mangle):
    with Simulator(MangledPositions(mangle), user=USER, password=PASSWORD) as simulator:
        config = write_config(tmp_path, simulator.url)
        original = config.read_text()

        result = run_cli(config)

    assert result.returncode == 69, result.stderr
    assert "nextPosition" in result.stderr and "Traceback" not in result.stderr
    assert _user_lines(config.read_text()) == _user_lines(original)
    assert config_module.load(str(config)).state.position is None


def _user_lines(text: str) -> list[str]:
    """config.ini without the lines the sync manages (the backfill may have stored its progress)."""
    return [line for line in text.splitlines() if not line.startswith(("position", "backfill_"))]


def test_a_password_inside_a_proxy_url_is_masked_in_config_errors_logs_and_stderr(tmp_path, simulator, proxy):
    inline = f"http://{PROXY_USER}:{quote(PROXY_PASSWORD, safe='')}@{proxy.url.split('//', 1)[1]}"
    (tmp_path / "broken").mkdir()
    broken = write_config(tmp_path / "broken", simulator.url,
                          local_proxy={"use": "True", "http": inline.rsplit(":", 1)[0] + ":port"})
    working = write_config(tmp_path, simulator.url, local_log={"log_level": "debug"},
                           local_proxy={"use": "True", "http": inline, "https": ""})
    simulator.faults.add("500", times=2)

    refused = run_cli(broken)
    result = run_cli(working, "-v")

    assert refused.returncode == 78 and f"{PROXY_USER}:***@" in refused.stderr, refused.stderr
    assert result.returncode == 0, result.stderr
    assert proxy.relayed == len(simulator.requests) > 0
    assert_no_secret(refused.stderr, result.stderr, result.stdout, everything_written(tmp_path))
    secrets = config_module.load(str(working)).secrets
    assert PROXY_PASSWORD in secrets and quote(PROXY_PASSWORD, safe="") in secrets
