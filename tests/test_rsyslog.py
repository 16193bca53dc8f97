"""CEF into a real rsyslog, read back by an independent CEF parser (liblognorm's lognormalizer).

Debian's rsyslog conflicts with syslog-ng-core, so rsyslog runs from the packages
``.ci/rsyslog-extracted`` unpacked (rsyslog and rsyslog-gnutls, 8.2302): ``rsyslogd -n`` in
the foreground, as root, on 127.0.0.1, with a configuration written here (the one
docs/cef.rst gives): one imtcp input per way in (TCP with octet counting, TCP with a newline
after each message, RFC 3164 over TCP, TLS through the gtls driver with a certificate from
the tests' trustme CA), each writing what it receives with omfile, one message a line
(``PROGRAM<tab>MSG``). The checks are those of the syslog-ng test
(:func:`cef_delivery.check_deliveries`): each delivery of a backfill and of an updates run with
deletions arrives exactly once and byte for byte, lognormalizer reads every field back, and
rsyslog reports no error of its own (in ``internal.log`` or on its stderr).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import trustme
from cef_delivery import cef_dataset, check_deliveries
from receivers import INLETS, TAKEN, SyslogDaemon, require, unavailable

from phishme_intel.simulator.dataset import Dataset

TREE = Path("/var/cache/phishme-intel-ci/rsyslog/root")  # where .ci/rsyslog-extracted unpacks
READY = '] start'
# /proc/net/tcp states of a connection the daemon has not read to its end: SYN_RECV,
# ESTABLISHED, CLOSE_WAIT (the client closed; the daemon has yet to read the end and close).
UNREAD = {"03", "01", "08"}
LISTEN = "0A"


def rsyslog_tree() -> tuple[Path, Path]:
    """``rsyslogd`` and its module folder, as .ci/rsyslog-extracted unpacked them."""
    rsyslogd = TREE / "usr/sbin/rsyslogd"
    modules = sorted(TREE.glob("usr/lib/*/rsyslog/lmnsd_gtls.so"))
    if not rsyslogd.exists() or not modules:
        unavailable(f"rsyslog is not unpacked in {TREE} (as root: bash .ci/rsyslog-extracted)")
    return rsyslogd, modules[0].parent


def tcp_states(ports: set[int]) -> list[str]:
    """The state of each IPv4 TCP socket whose local port is one of ``ports`` (hex, as /proc/net/tcp says)."""
    states = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if int(local.rsplit(":", 1)[1], 16) in ports:
            states.append(state)
    return states


class Rsyslog(SyslogDaemon):
    """rsyslogd listening on 127.0.0.1 with one imtcp input per inlet of :data:`receivers.INLETS`."""

    name = "rsyslogd"
    config_name = "rsyslog.conf"
    ready = READY

    def __init__(self, folder: Path, ca: trustme.CA, rsyslogd: Path, modules: Path) -> None:
        super().__init__(folder, ca)
        self.rsyslogd, self.modules = rsyslogd, modules

    def problems(self) -> list[str]:
        """rsyslog's own messages at error severity or worse or that speak of an error, and its stderr."""
        return super().problems() + (self.stderr.read_text().splitlines() if self.stderr.exists() else [])

    def _command(self) -> list[str]:
        return [str(self.rsyslogd), "-n", "-f", str(self.config), "-i", str(self.folder / "pid"),
                "-M", str(self.modules)]

    def _listening(self) -> bool:
        ports = set(self.ports.values())
        return tcp_states(ports).count(LISTEN) == len(ports)

    def wait_until_read(self) -> None:
        """Return once rsyslogd read every connection made to an inlet to its end and closed it."""
        ports = set(self.ports.values())
        deadline = time.monotonic() + 20
        while UNREAD.intersection(tcp_states(ports)):
            assert time.monotonic() < deadline, "rsyslogd did not read a connection to its end within 20 s"
            time.sleep(0.02)

    def _config(self) -> str:
        folder = self.folder
        lines = [
            f'global(workDirectory="{folder}" maxMessageSize="64k" processInternalMessages="on")',
            'main_queue(queue.timeoutShutdown="20000")',
            'module(load="imtcp")',
            'module(load="mmrm1stspace")',
            'template(name="cef" type="string" string="%programname%\\t%msg%\\n")',
            'template(name="internal" type="string" string="%syslogseverity-text%\\t%msg%\\n")',
            f'action(type="omfile" file="{self.internal_log}" template="internal")',
        ]
        tls = (f' streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon"'
               f' streamDriver.caFile="{folder}/ca.pem" streamDriver.certFile="{folder}/server.pem"'
               f' streamDriver.keyFile="{folder}/server.key"')
        for name, inlet in INLETS.items():
            ruleset = f"cef_{name.replace('-', '_')}"
            lines += [
                f'input(type="imtcp" address="127.0.0.1" port="{self.ports[name]}" ruleset="{ruleset}"'
                f'{tls if inlet.settings["transport"] == "tls" else ""})',
                f'ruleset(name="{ruleset}") {{ action(type="mmrm1stspace")'
                f' action(type="omfile" file="{folder}/{name}.log" template="cef") }}',
            ]
        return "\n".join(lines) + "\n"


@pytest.fixture
def dataset() -> Dataset:
    return cef_dataset()


@pytest.fixture
def rsyslog(tmp_path, ca):
    require("lognormalizer")
    daemon = Rsyslog(tmp_path / "rsyslog", ca, *rsyslog_tree())
    daemon.start()
    yield daemon
    daemon.stop()


@pytest.mark.parametrize("inlet", INLETS)
def test_a_backfill_and_an_updates_run_reach_rsyslog_once_each_byte_identical_and_parseable(
    tmp_path, simulator, dataset, rsyslog, inlet,
):
    check_deliveries(tmp_path, simulator.url, dataset, rsyslog, inlet)


def test_rsyslog_starts_on_other_ports_when_one_it_was_given_is_taken_before_it_binds_it(tmp_path, ca):
    """The receiver itself: a port found free and taken before rsyslogd binds it is not a failed test."""
    rsyslogd, modules = rsyslog_tree()
    daemon = Rsyslog(tmp_path / "rsyslog", ca, rsyslogd, modules)
    taken = daemon.ports["tcp-lf"]
    with socket.socket() as holder:  # bound, not listening: the daemon's own listener is what counts
        holder.bind(("127.0.0.1", taken))
        daemon.start()
    try:
        assert daemon.ports["tcp-lf"] != taken
        first = [path.read_text() for path in daemon.folder.glob("*.start-1")]
        assert any(TAKEN in text for text in first), first
        assert daemon.problems() == []
    finally:
        daemon.stop()
