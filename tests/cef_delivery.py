"""CEF through the real CLI into a real syslog daemon, read back by an independent CEF parser.

The receiver tests (syslog-ng, rsyslog) share this: :func:`check_deliveries` runs a backfill
and an updates run with deletions into one inlet of a :class:`Receiver` and asserts that each
delivery arrived exactly once and byte for byte as the CEF the adapter formats, that liblognorm's
``lognormalizer`` recovers every header field and extension value the threat gave, and that
the daemon logged no error of its own.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from support import run_cli, write_config

from phishme_intel.adapters._cef import Event, removal_event, threat_events
from phishme_intel.models import ThreatRef, parse_threat
from phishme_intel.simulator.dataset import Dataset, Key

VENDOR = "Cofense"
CEF_RULEBASE = "version=2\nrule=:%cef:cef%\n"


def cef_dataset() -> Dataset:
    """52 threats over 10 days: some 700 CEF events in a backfill."""
    return Dataset(seed=13, malware=40, phish=12, days=10)


class Receiver(Protocol):
    """A syslog daemon on 127.0.0.1 with one inlet (a listening source) per way in."""

    def settings(self, inlet: str) -> dict[str, str]:
        """``[integration_cef_syslog]`` settings that send to ``inlet``."""

    def received(self, inlet: str) -> list[tuple[str, str]]:
        """(program, message) of everything ``inlet`` received, in order; call after :meth:`stop`."""

    def wait_until_read(self) -> None:
        """Return once the daemon read every connection made to it to its end."""

    def start(self) -> None:
        """Start the daemon; return once its inlets listen."""

    def stop(self) -> None:
        """Stop the daemon once it wrote out everything it read."""

    def problems(self) -> list[str]:
        """The daemon's own messages that speak of an error."""


def events_of(dataset: Dataset, keys: Iterable[Key]) -> list[Event]:
    """The CEF events of the live threats among ``keys``, as the adapter builds them."""
    return [event for raw in dataset.threats(sorted(keys)) for event in threat_events(parse_threat(raw))]


def delivered(receiver: Receiver, config: Path, inlet: str) -> list[str]:
    """Run the CLI once; the messages ``receiver`` got from it, once it has read them all."""
    before = len(receiver.received(inlet))
    result = run_cli(config)
    assert result.returncode == 0, result.stderr
    receiver.wait_until_read()
    receiver.stop()
    received = receiver.received(inlet)[before:]
    receiver.start()
    assert {program for program, _ in received} == {"phishme-intel"}
    return [message for _, message in received]


def lognormalized(folder: Path, messages: list[str]) -> list[dict]:
    """liblognorm's reading of each CEF message: its ``cef`` field, one per message, in order."""
    rulebase = folder / "cef.rb"
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


def check_deliveries(folder: Path, simulator_url: str, dataset: Dataset, receiver: Receiver, inlet: str) -> None:
    """A backfill, then an updates run with republished and deleted threats, into ``inlet``.

    Each delivery arrives exactly once, byte for byte; lognormalizer reads back every field;
    the receiver logs no error.
    """
    config = write_config(folder, simulator_url, integration_cef_syslog={"use": "True", **receiver.settings(inlet)})
    backfill = events_of(dataset, dataset.live_ids())

    received_backfill = delivered(receiver, config, inlet)
    republished = dataset.republish(6)
    deleted = dataset.delete_keys(sorted(dataset.live_ids() - set(republished))[:4])
    updates = events_of(dataset, republished) + [removal_event(ThreatRef(*key)) for key in deleted]
    received_updates = delivered(receiver, config, inlet)

    for events, received in ((backfill, received_backfill), (updates, received_updates)):
        assert len(events) > 10
        assert Counter(received) == Counter(event.format(VENDOR) for event in events)
    sent = {event.format(VENDOR): event for event in backfill + updates}
    received = received_backfill + received_updates
    assert lognormalized(folder, received) == [as_parsed(sent[message]) for message in received]
    assert receiver.problems() == []
