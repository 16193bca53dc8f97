"""CEF into a real syslog-ng, read back by an independent CEF parser (liblognorm's lognormalizer).

For each way in (TCP with octet counting, TCP with a newline after each message, RFC 3164
over TCP, TLS verified with a trustme CA) a backfill and an updates run with deletions go
through the real CLI into a syslog-ng started here on 127.0.0.1. Each delivery must arrive
exactly once and byte for byte as the CEF the adapter formats; lognormalizer must recover,
from what syslog-ng stored, every header field and extension value the threat gave; and
syslog-ng must log no error of its own (a TLS end without close_notify is one). The checks
are :func:`cef_delivery.check_deliveries`, shared with tests/test_rsyslog.py.
"""

from __future__ import annotations

import socket

import pytest
from cef_delivery import cef_dataset, check_deliveries
from receivers import INLETS, SYSLOG_NG, TAKEN, SyslogNg, require

from phishme_intel.simulator.dataset import Dataset


@pytest.fixture
def dataset() -> Dataset:
    return cef_dataset()


@pytest.fixture
def syslog_ng(tmp_path, ca):
    require(SYSLOG_NG, "lognormalizer")
    daemon = SyslogNg(tmp_path / "syslog-ng", ca)
    daemon.start()
    yield daemon
    daemon.stop()


@pytest.mark.parametrize("inlet", INLETS)
def test_a_backfill_and_an_updates_run_reach_syslog_ng_once_each_byte_identical_and_parseable(
    tmp_path, simulator, dataset, syslog_ng, inlet,
):
    check_deliveries(tmp_path, simulator.url, dataset, syslog_ng, inlet)


def test_syslog_ng_starts_on_other_ports_when_one_it_was_given_is_taken_before_it_binds_it(tmp_path, ca):
    """The receiver itself: a port found free and taken before the daemon binds it is not a failed test."""
    require(SYSLOG_NG)
    daemon = SyslogNg(tmp_path / "syslog-ng", ca)
    taken = daemon.ports["tcp-lf"]
    with socket.create_server(("127.0.0.1", taken)):
        daemon.start()
    try:
        assert daemon.ports["tcp-lf"] != taken
        first = [path.read_text() for path in daemon.folder.glob("*.start-1")]
        assert any(TAKEN in text for text in first), first
        with socket.create_connection(("127.0.0.1", daemon.ports["tcp-lf"]), timeout=10):
            pass
        assert daemon.problems() == []
    finally:
        daemon.stop()
