"""Real receivers for the adapter tests, on 127.0.0.1 with configs written here: syslog-ng, medallion.

:class:`SyslogDaemon` is what the syslog daemons share (tests/test_rsyslog.py runs rsyslog
through it): one source per :class:`Inlet` (TCP octet counting, TCP with a newline after each
message, RFC 3164 over TCP, TLS), each writing what it receives, one message a line
(``PROGRAM<tab>MSG``), to its own file; the daemon's own messages (``LEVEL<tab>MSG``) go to
``internal.log``. :meth:`SyslogDaemon.stop` ends the daemon with SIGTERM, which flushes every
file, so what the files hold afterwards is everything it received (``wait_until_read`` first:
messages still in a socket when it stops are not read). :class:`SyslogNg` runs ``syslog-ng``
in the foreground.

:class:`Medallion` runs the OASIS TAXII 2.1 server ``medallion`` (memory backend) with one
API root ``api1`` and one writable collection, users from a dict, plain HTTP or TLS.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
import trustme

SYSLOG_NG = "/usr/sbin/syslog-ng"
READY = "syslog-ng starting up"
#: What a daemon says when a port it was given is taken: it then starts again on other ports.
TAKEN = "Address already in use"
STARTS = 5
ERROR_LEVELS = ("err", "crit", "alert", "emerg")


def require(*programs: str) -> None:
    """Skip (fail in CI) unless every one of ``programs`` is installed."""
    missing = [program for program in programs if not shutil.which(program)]
    if missing:
        unavailable(f"not installed: {', '.join(missing)} (.ci/system-packages installs them)")


def unavailable(problem: str) -> NoReturn:
    """Skip the test for ``problem`` (a receiver is missing); fail it in CI, which must run it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the receiver tests: {problem}")
    pytest.skip(problem)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Inlet:
    """One syslog-ng source and the adapter settings that send to it."""

    name: str
    source: str  # the syslog-ng source driver, ``{port}`` and ``{tls}`` to fill in
    settings: dict[str, str]


INLETS = {
    inlet.name: inlet for inlet in (
        Inlet("tcp-octet", 'syslog(ip("127.0.0.1") port({port}) transport("tcp") flags(store-raw-message))',
              {"transport": "tcp", "framing": "octet", "header": "rfc5424"}),
        Inlet("tcp-lf", 'network(ip("127.0.0.1") port({port}) transport("tcp") flags(syslog-protocol))',
              {"transport": "tcp", "framing": "lf", "header": "rfc5424"}),
        Inlet("rfc3164", 'network(ip("127.0.0.1") port({port}) transport("tcp"))',
              {"transport": "tcp", "framing": "lf", "header": "rfc3164"}),
        Inlet("tls", 'syslog(ip("127.0.0.1") port({port}) transport("tls") {tls})',
              {"transport": "tls", "framing": "octet", "header": "rfc5424"}),
    )
}


class SyslogDaemon:
    """What the tests' syslog daemons share: a folder, a free port per inlet of :data:`INLETS`,
    a server certificate from ``ca``, one file per inlet (``<inlet>.log``, one message a line,
    ``PROGRAM<tab>MSG``) and the daemon's own messages in ``internal.log`` (``LEVEL<tab>MSG``).

    A subclass names its program and config file and writes the config (:meth:`_config`),
    starts the daemon (:meth:`start`, through :meth:`_launch`) and knows when it has read
    every connection (:meth:`wait_until_read`).
    """

    name = ""
    config_name = ""
    #: What ``internal.log`` says once the daemon has started up.
    ready = READY

    def __init__(self, folder: Path, ca: trustme.CA) -> None:
        self.folder = folder
        folder.mkdir(exist_ok=True)
        self.ports = {name: free_port() for name in INLETS}
        self.ca_file = folder / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        server = ca.issue_cert("127.0.0.1")
        server.private_key_pem.write_to_path(str(folder / "server.key"))
        server.cert_chain_pems[0].write_to_path(str(folder / "server.pem"))
        self.internal_log = folder / "internal.log"
        self.stderr = folder / "stderr"
        self.config = folder / self.config_name
        self.config.write_text(self._config())
        self._process: subprocess.Popen[bytes] | None = None
        self._started = False

    def settings(self, inlet: str) -> dict[str, str]:
        """``[integration_cef_syslog]`` settings that send to ``inlet``."""
        settings = {**INLETS[inlet].settings, "host": "127.0.0.1", "port": str(self.ports[inlet])}
        if settings["transport"] == "tls":
            settings["ca_bundle"] = str(self.ca_file)
        return settings

    def received(self, inlet: str) -> list[tuple[str, str]]:
        """(program, message) of every message ``inlet`` received, in order; call after :meth:`stop`."""
        path = self.folder / f"{inlet}.log"
        if not path.exists():
            return []
        return [tuple(line.split("\t", 1)) for line in path.read_text().splitlines()]  # type: ignore[misc]

    def problems(self) -> list[str]:
        """The daemon's own messages at error level or worse, or that speak of an error."""
        lines = self.internal_log.read_text().splitlines() if self.internal_log.exists() else []
        return [line for line in lines if line.split("\t")[0] in ERROR_LEVELS or "error" in line.lower()]

    def start(self) -> None:
        """Start the daemon; returns once it listens on every inlet.

        A port found free can be taken (by another test's connection) before the daemon binds
        it: the daemon says :data:`TAKEN`, and on its first start (before the tests took its
        ports for the adapter's settings) starts again on other free ports, up to :data:`STARTS`
        times in all. What the failed start logged is kept beside, not in, the logs
        :meth:`problems` reads.
        """
        for attempt in range(1, STARTS + 1):
            if self._launch(self._command(), self._listening):
                self._started = True
                return
            self._halt()
            assert not self._started, f"{self.name}: a port it listened on before was taken when it started again"
            for log in (self.internal_log, self.stderr):
                if log.exists():
                    log.rename(log.with_name(f"{log.name}.start-{attempt}"))
            self.ports = {name: free_port() for name in INLETS}
            self.config.write_text(self._config())
        pytest.fail(f"{self.name}: a port it was given was taken before it bound it, {STARTS} times")

    def stop(self) -> None:
        """SIGTERM, then wait: the daemon writes out what it read before it exits."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        assert self._process.wait(timeout=30) == 0
        self._process = None

    def _launch(self, command: list[str], listening: Callable[[], bool]) -> bool:
        """Run ``command``: True once ``internal.log`` says :attr:`ready` (anew) and ``listening()``
        holds, False once the daemon says a port was :data:`TAKEN` (it may have ended then)."""
        offsets = (self._size(self.internal_log), self._size(self.stderr))
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=self.stderr.open("ab"))
        deadline = time.monotonic() + 20
        while True:
            ended = self._process.poll() is not None  # before the logs: what it said before it ended is in them
            if self._said_since(offsets, TAKEN):
                return False
            if self._logged_since(offsets[0], self.ready) and listening():
                return not self._said_since(offsets, TAKEN)
            assert not ended, f"{self.name} ended: {self.stderr.read_text()}"
            assert time.monotonic() < deadline, f"{self.name} did not start up within 20 s"
            time.sleep(0.02)

    def _halt(self) -> None:
        """End the daemon, whatever state a failed start left it in."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait(timeout=30)
            self._process = None

    def _said_since(self, offsets: tuple[int, int], text: str) -> bool:
        """Whether ``internal.log`` or the daemon's stderr holds ``text`` past ``offsets``."""
        return any(text in self._read_from(log, offset)
                   for log, offset in zip((self.internal_log, self.stderr), offsets, strict=True))

    def _logged_since(self, offset: int, text: str) -> bool:
        return text in self._read_from(self.internal_log, offset)

    @staticmethod
    def _size(path: Path) -> int:
        return path.stat().st_size if path.exists() else 0

    @staticmethod
    def _read_from(path: Path, offset: int) -> str:
        if not path.exists():
            return ""
        with path.open(errors="replace") as log:
            log.seek(offset)
            return log.read()

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _listening(self) -> bool:
        """Whether every inlet listens, once the daemon said it is ready (syslog-ng: it does by then)."""
        return True

    def _config(self) -> str:
        raise NotImplementedError


class SyslogNg(SyslogDaemon):
    """A syslog-ng daemon listening on 127.0.0.1 with every inlet of :data:`INLETS`."""

    name = "syslog-ng"
    config_name = "syslog-ng.conf"

    def _command(self) -> list[str]:
        folder = self.folder
        return [SYSLOG_NG, "--foreground", "--no-caps", f"--cfgfile={self.config}", f"--persist-file={folder}/persist",
                f"--pidfile={folder}/pid", f"--control={folder}/ctl"]

    def wait_until_read(self) -> None:
        """Return once syslog-ng read every connection made to it to its end (it logs each close)."""
        deadline = time.monotonic() + 20
        while True:
            text = self.internal_log.read_text()
            if text.count("Syslog connection closed") >= text.count("Syslog connection accepted"):
                return
            assert time.monotonic() < deadline, "syslog-ng did not see a connection end within 20 s"
            time.sleep(0.02)

    def _config(self) -> str:
        tls = (f'tls(key-file("{self.folder}/server.key") cert-file("{self.folder}/server.pem") '
               'peer-verify(optional-untrusted))')
        lines = [
            "@version: 3.38",
            "options { keep-hostname(yes); log-msg-size(65536); create-dirs(no); };",
            "source s_internal { internal(); };",
            f'destination d_internal {{ file("{self.internal_log}" template("${{LEVEL}}\\t${{MSG}}\\n")); }};',
            "log { source(s_internal); destination(d_internal); };",
        ]
        for name, inlet in INLETS.items():
            source = inlet.source.format(port=self.ports[name], tls=tls)
            lines += [
                f"source s_{name.replace('-', '_')} {{ {source}; }};",
                f'destination d_{name.replace("-", "_")} {{ file("{self.folder}/{name}.log" '
                'template("${PROGRAM}\\t${MSG}\\n")); };',
                f"log {{ source(s_{name.replace('-', '_')}); destination(d_{name.replace('-', '_')}); }};",
            ]
        return "\n".join(lines) + "\n"


MEDALLION = """
import sys
from medallion import load_app
config, certificate, key = sys.argv[1:4]
load_app(config).run(host="127.0.0.1", port=0, ssl_context=(certificate, key) if certificate else None)
"""
COLLECTION = "365fed99-08fa-fdcd-a1b3-fb247eb41d01"


class Medallion:
    """medallion serving ``<url>/collections/<COLLECTION>/`` to ``users``; ``tls`` a trustme CA for HTTPS."""

    def __init__(self, folder: Path, users: dict[str, str], tls: trustme.CA | None = None) -> None:
        folder.mkdir(exist_ok=True)
        self.folder = folder
        data = {
            "/discovery": {"title": "test", "api_roots": []},
            "api1": {
                "information": {"title": "api1", "versions": ["application/taxii+json;version=2.1"],
                                "max_content_length": 100 * 1024 * 1024},
                "status": [],
                "collections": [{
                    "id": COLLECTION, "title": "intel", "can_read": True, "can_write": True,
                    "media_types": ["application/stix+json;version=2.1"], "objects": [], "manifest": [],
                }],
            },
        }
        (folder / "data.json").write_text(json.dumps(data))
        (folder / "medallion.json").write_text(json.dumps({
            "backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
                        "filename": str(folder / "data.json")},
            "users": users,
            "taxii": {"max_page_size": 100_000},
        }))
        certificate = key = ""
        if tls is not None:
            server = tls.issue_cert("127.0.0.1")
            certificate, key = str(folder / "server.pem"), str(folder / "server.key")
            server.cert_chain_pems[0].write_to_path(certificate)
            server.private_key_pem.write_to_path(key)
        self._log = (folder / "medallion.log").open("w+")
        self._process = subprocess.Popen(
            [sys.executable, "-c", MEDALLION, str(folder / "medallion.json"), certificate, key],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=folder,
        )
        self.api_root = self._wait_for_address() + "/api1"
        self.collection_url = f"{self.api_root}/collections/{COLLECTION}/"

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + 30
        while True:
            found = re.search(r"Running on (https?://127\.0\.0\.1:\d+)", (self.folder / "medallion.log").read_text())
            if found:
                return found.group(1)
            assert self._process.poll() is None, f"medallion ended: {(self.folder / 'medallion.log').read_text()}"
            assert time.monotonic() < deadline, "medallion did not start within 30 s"
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=20)
        self._log.close()
