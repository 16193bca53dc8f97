"""``phishme-intel -conf config.ini lookup VALUE...``: is this indicator known, and from which threat?

:func:`lookup` takes values as an analyst pastes them (an upper-case hash from an EDR, a
defanged URL, a Unicode host name, an IP address) and asks the store the config names
(``[integration_sqlite]`` or ``[integration_postgresql]``; the first, when both are on)
for each ``(kind, value)`` the indicator gate makes of it
(:func:`phishme_intel.models.indicators.candidates`), and more:

- an IPv4 address is looked for as ``ipv4`` and as ``sender_ip``, an e-mail address as
  ``email`` and as ``sender_email``;
- a URL is also looked for by its host among the domains, a URL without a scheme as
  ``http`` and ``https`` URL;
- a host is also matched by the wildcard domains that cover it (``*.example.com`` matches
  ``example.com`` and ``a.b.example.com``), down to the shortest the gate takes as a
  wildcard (never one of a public suffix such as ``*.com``);
- the value as given is also looked for as an e-mail ``subject``.

Every query asks by value, which the stores index on ``(value, kind)``. Nothing is written
and no lock is taken: a lookup runs while a sync writes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from . import config as config_module
from .adapters.store import Listing, Sighting, StoreReader
from .errors import ConfigError
from .models.indicators import candidates, verdict


@dataclass
class Answer:
    """What the store knows of one value asked for: its listings, and (if asked) its history."""

    query: str
    wanted: list[tuple[str, str]]
    matches: list[Listing] = field(default_factory=list)
    history: list[Sighting] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.matches or self.history)


def lookup(config_path: str, values: Sequence[str], *, history: bool = False) -> list[Answer]:
    """One :class:`Answer` per value, in order. Raises ConfigError (no store enabled) or AdapterError."""
    reader = open_store(config_path)
    try:
        return ask(reader, values, history=history)
    finally:
        reader.close()


def open_store(config_path: str) -> StoreReader:
    """A reader of the first store the config enables; raises ConfigError when it enables none."""
    config = config_module.load(config_path)
    for adapter, settings in config.adapters.values():
        if adapter.keeps_store:
            return adapter(settings).reader()
    raise ConfigError(config.path, ["lookup needs a store: enable [integration_sqlite] or [integration_postgresql]"])


def ask(reader: StoreReader, values: Sequence[str], *, history: bool = False) -> list[Answer]:
    """Look every value up in ``reader`` with as few queries as the store needs."""
    answers = [Answer(value, wanted(value)) for value in values]
    every = {pair for answer in answers for pair in answer.wanted}
    listings = _by_key(reader.find(every)) if every else {}
    sightings = _by_key(reader.history(every)) if history and every else {}
    for answer in answers:
        for pair in answer.wanted:
            answer.matches += listings.get(pair, [])
            answer.history += sightings.get(pair, [])
    return answers


def wanted(value: str) -> list[tuple[str, str]]:
    """The ``(kind, value)`` pairs to ask the store for ``value`` (see the module's docstring)."""
    found: list[tuple[str, str]] = []
    for kind, canonical in candidates(value):
        found.append((kind, canonical))
        if kind in ("ipv4", "email"):
            found.append((f"sender_{'ip' if kind == 'ipv4' else 'email'}", canonical))
        if kind == "domain":
            found += [("domain", wildcard) for wildcard in wildcards(canonical)]
    if value.strip():
        found.append(("subject", value.strip()))
    return list(dict.fromkeys(found))


def wildcards(host: str) -> list[str]:
    """The wildcard domains that cover ``host``: ``*.`` + the host and each parent the gate takes as one."""
    if host.startswith("*."):
        return []
    labels = host.split(".")
    found = (verdict("domain", "*." + ".".join(labels[start:])).value for start in range(len(labels)))
    return [wildcard for wildcard in found if wildcard is not None]


def _by_key(rows: Iterable[Listing | Sighting]) -> dict[tuple[str, str], list]:
    grouped: dict[tuple[str, str], list] = {}
    for row in rows:
        grouped.setdefault((row.kind, row.value), []).append(row)
    return grouped


def iso(milliseconds: int | None) -> str | None:
    """Epoch milliseconds as ISO 8601 UTC (``2026-11-30T09:15:00Z``)."""
    if milliseconds is None:
        return None
    return dt.datetime.fromtimestamp(milliseconds / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(answer: Answer) -> str:
    """The answer for a person: a block per match and per history row, or one line saying nothing matched."""
    if not answer.wanted:
        return f"{answer.query}: not an indicator of any kind"
    if not answer.found:
        return f"{answer.query}: not found"
    lines = []
    for m in answer.matches:
        shown = m.value if m.value == answer.query else f"{m.value} (for {answer.query})"
        lines += [
            f"{shown}: {m.kind} of {m.threat_type} threat {m.threat_id}: {m.threat_label or '(no title)'}",
            f"  impact {m.impact or '-'}, role {m.role or '-'}, malware family {m.malware_family or '-'}",
            f"  first published {iso(m.first_published)}, last published {iso(m.last_published)}",
            f"  {m.detail_url or '(no detail URL)'}",
        ]
    for s in answer.history:
        until = f"withdrawn {iso(s.withdrawn_at)}" if s.withdrawn_at is not None else "still listed"
        lines.append(
            f"{s.value}: {s.kind} from {s.threat_type} threat {s.threat_id}: first seen {iso(s.first_seen)}, "
            f"last seen {iso(s.last_seen)}, {until}"
        )
    return "\n".join(lines)


def json_lines(answer: Answer) -> list[str]:
    """The answer as JSON Lines: one ``match`` record per match, one ``history`` record per history row."""
    records: list[dict[str, object]] = [
        {
            "record": "match", "query": answer.query, "kind": m.kind, "value": m.value,
            "threat_type": m.threat_type, "threat_id": m.threat_id, "label": m.threat_label, "impact": m.impact,
            "role": m.role, "malware_family": m.malware_family, "first_published": iso(m.first_published),
            "last_published": iso(m.last_published), "detail_url": m.detail_url,
        }
        for m in answer.matches
    ]
    records += [
        {
            "record": "history", "query": answer.query, "kind": s.kind, "value": s.value,
            "threat_type": s.threat_type, "threat_id": s.threat_id, "first_seen": iso(s.first_seen),
            "last_seen": iso(s.last_seen), "withdrawn_at": iso(s.withdrawn_at),
        }
        for s in answer.history
    ]
    return [json.dumps(record, ensure_ascii=False, separators=(",", ":")) for record in records]
