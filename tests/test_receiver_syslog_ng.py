"""CEF into a real syslog-ng, read back by an independent CEF parser (liblognorm's lognormalizer).

For each way in (TCP with octet counting, TCP with a newline after each message, RFC 3164
over TCP, TLS verified with a trustme CA) a backfill and an updates run with deletions go
through the real CLI into a syslog-ng started here on 127.0.0.1. Each delivery must arrive
exactly once and byte for byte as the CEF the adapter formats; lognormalizer must recover,
from what syslog-ng stored, every header field and extension value the threat gave; and
syslog-ng must log no error of its own (a TLS end without close_notify is one).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest
from receivers import INLETS, SYSLOG_NG, SyslogNg, require
from support import run_cli, write_config

from phishme_intel.adapters._cef import Event, removal_event, threat_events
from phishme_intel.models import ThreatRef, parse_threat
from phishme_intel.simulator.dataset import Dataset

VENDOR = "Cofense"
CEF_RULEBASE = "version=2\nrule=:%cef:cef%\n"


@pytest.fixture
def dataset() -> Dataset:
    return Dataset(seed=13, malware=40, phish=12, days=10)


@pytest.fixture
def syslog_ng(tmp_path, ca):
    require(SYSLOG_NG, "lognormalizer")
    daemon = SyslogNg(tmp_path / "syslog-ng", ca)
    daemon.start()
    yield daemon
    daemon.stop()


def events_of(dataset: Dataset, keys) -> list[Event]:
    """The CEF events of the live threats among ``keys``, as the adapter builds them."""
    return [event for raw in dataset.threats(sorted(keys)) for event in threat_events(parse_threat(raw))]


def delivered(syslog_ng: SyslogNg, config, inlet: str) -> list[str]:
    """Run the CLI once; the messages syslog-ng received from it, once it has read them all."""
    before = len(syslog_ng.received(inlet))
    result = run_cli(config)
    assert result.returncode == 0, result.stderr
    syslog_ng.wait_until_read()
    syslog_ng.stop()
    received = syslog_ng.received(inlet)[before:]
    syslog_ng.start()
    assert {program for program, _ in received} == {"phishme-intel"}
    return [message for _, message in received]


def lognormalized(tmp_path, messages: list[str]) -> list[dict]:
    """liblognorm's reading of each CEF message: its ``cef`` field, one per message, in order."""
    rulebase = tmp_path / "cef.rb"
    rulebase.write_text(CEF_RULEBASE)
    result = subprocess.run(["lognormalizer", "-r", str(rulebase), "-e", "json"], input="\n".join(messages) + "\n",
                            capture_output=True, text=True, check=True, timeout=60)
    parsed = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(parsed) == len(messages)
    assert [entry for entry in parsed if "cef" not in entry] == []
    return [entry["cef"] for entry in parsed]


def as_parsed(event: Event) -> dict:
    """What a CEF parser should read from ``event``: header fields and every extension value given.

    liblognorm 2.0.6 drops the first character of the first extension key when no space
    follows the last ``|`` (the CEF specification puts none there): the expectation allows
    for that, the output stays as the specification says.
    """
    extensions = {key: str(value) for key, value in event.extensions if value is not None and value != ""}
    first = next(iter(extensions))
    extensions = {(key[1:] if key == first else key): value for key, value in extensions.items()}
    return {
        "DeviceVendor": VENDOR, "DeviceProduct": event.product, "DeviceVersion": "1.0",
        "SignatureID": event.signature, "Name": event.name, "Severity": str(event.severity),
        "Extensions": extensions,
    }


@pytest.mark.parametrize("inlet", INLETS)
def test_a_backfill_and_an_updates_run_reach_syslog_ng_once_each_byte_identical_and_parseable(
    tmp_path, simulator, dataset, syslog_ng, inlet,
):
    config = write_config(tmp_path, simulator.url, integration_cef_syslog={
        "use": "True", **syslog_ng.settings(inlet),
    })
    backfill = events_of(dataset, dataset.live_ids())

    received_backfill = delivered(syslog_ng, config, inlet)
    republished = dataset.republish(6)
    deleted = dataset.delete_keys(sorted(dataset.live_ids() - set(republished))[:4])
    updates = events_of(dataset, republished) + [removal_event(ThreatRef(*key)) for key in deleted]
    received_updates = delivered(syslog_ng, config, inlet)

    for events, received in ((backfill, received_backfill), (updates, received_updates)):
        assert len(events) > 10
        assert Counter(received) == Counter(event.format(VENDOR) for event in events)
    sent = {event.format(VENDOR): event for event in backfill + updates}
    received = received_backfill + received_updates
    assert lognormalized(tmp_path, received) == [as_parsed(sent[message]) for message in received]
    assert syslog_ng.problems() == []
