"""The words of phishme-intel, and the code that turns API JSON into them.

threat
    One malware campaign (``kind`` ``malware``, the vendor's "Intelligence" product) or one
    confirmed phish (``kind`` ``phish``, "Brand Intelligence"), as the API serves it. Named by
    a :class:`ThreatRef`: its kind and its integer id (the two id spaces are independent).
indicator
    One observable value taken from a threat that a product can match or block: a URL, a
    domain, an IPv4 address, an e-mail address, a file hash, a subject line, a sender. An
    :class:`Indicator` carries the kind, the value and the context the threat gives it
    (impact, role, malware family). The vendor portal links inside a threat are context,
    never indicators. Every value passes the indicator gate (:mod:`.indicators`) and is kept
    in its canonical form; a value that fails is a *rejected* value, not an indicator.
allow-listed
    An indicator the site's allow-list covers (:mod:`.allowlist`): kept by the stores, emitted
    by no other adapter.
gate
    A run's :class:`Gate`: whether private IPv4 addresses are indicators, and the allow-list.
delivery
    Handing threats to the product adapters: a delivered threat replaces whatever the
    product held for the same :class:`ThreatRef`, so delivering twice changes nothing.
withdrawal
    Telling the adapters that the vendor deleted a threat; each adapter documents whether it
    removes the threat's data or emits a removal event.
commit
    The moment an adapter makes everything delivered and withdrawn so far durable.
position
    The updates feed's UUID that marks how far the product holds the changes; stored in
    config.ini only after a commit.
checkpoint
    How far a backfill (the first, search-window based sync) has come; stored beside the
    position so an interrupted backfill resumes instead of starting again.

Parsing is forgiving where the API is messy (a list that is missing or null, an unknown
field, one bad indicator value) and strict where a threat cannot be understood at all
(no id, no time): then :class:`~phishme_intel.errors.ThreatFormatError` is raised, which
the sync catches for that one threat.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson

from ..errors import ThreatFormatError
from . import indicators
from .allowlist import Allowlist
from .indicators import QUICK, cached_verdict
from .limits import MAX_DEPTH, Unreadable, deeper_than, is_time

MALWARE = "malware"
PHISH = "phish"
KINDS = (MALWARE, PHISH)
IMPACTS = ("Major", "Moderate", "Minor", "None")
INDICATOR_KINDS = indicators.KINDS
_PREFIX = {MALWARE: "m", PHISH: "p"}
_MAX_INTEGER = 2**63 - 1  # ids and times must fit a 64-bit signed integer (SQLite's INTEGER)
_TIMES = ("firstPublished", "lastPublished", "firstDate", "lastDate", "confirmedDate")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class ThreatRef(NamedTuple):
    """A threat's identity: ``kind`` (``malware`` or ``phish``) and its integer id."""

    kind: str
    id: int

    @property
    def api_id(self) -> str:
        """The id as the search endpoint takes it: ``m_<id>`` or ``p_<id>``."""
        return f"{_PREFIX[self.kind]}_{self.id}"


class Indicator(NamedTuple):
    """One observable of a threat, its value canonical; ``impact``/``role``/``malware_family`` None when unknown.

    A named tuple, not a dataclass: a backfill makes hundreds of thousands of them, and a
    tuple is made in a third of the time a frozen dataclass takes.
    """

    kind: str
    value: str
    impact: str | None = None
    role: str | None = None
    malware_family: str | None = None
    allowlisted: bool = False


class Rejection(NamedTuple):
    """A value of a threat the gate turned away, and why (one of :data:`.indicators.REASONS`)."""

    kind: str
    value: str
    reason: str


@dataclass(frozen=True)
class Gate:
    """What a run takes as indicators: private IPv4 addresses or not, and what it allow-lists."""

    keep_private_ips: bool = False
    allowlist: Allowlist = field(default_factory=Allowlist)


DEFAULT_GATE = Gate()


@dataclass(slots=True)
class Threat:
    """One threat: its identity, times (epoch milliseconds), title, and the JSON as received."""

    kind: str
    id: int
    label: str
    first_published: int
    last_published: int
    raw: dict[str, Any] = field(repr=False)
    gate: Gate = field(default=DEFAULT_GATE, repr=False)
    _indicators: list[Indicator] | None = field(default=None, repr=False)
    _rejected: list[Rejection] = field(default_factory=list, repr=False)
    _json: str | None = field(default=None, repr=False)

    @property
    def ref(self) -> ThreatRef:
        return ThreatRef(self.kind, self.id)

    @property
    def json(self) -> str:
        """The threat's JSON text: as the API sent it when that was kept, else compact; computed once."""
        if self._json is None:
            self._json = _encoded(self.raw)
        return self._json

    @property
    def indicators(self) -> list[Indicator]:
        """The threat's indicators (allow-listed ones too), one per distinct (kind, value), the first seen.

        Computed once, with :attr:`rejected`.
        """
        if self._indicators is None:
            found = _malware_indicators(self.raw) if self.kind == MALWARE else _phish_indicators(self.raw)
            self._indicators = self._screen(found)
        return self._indicators

    @property
    def rejected(self) -> list[Rejection]:
        """The values of the threat the gate turned away, one per distinct (kind, value)."""
        if self._indicators is None:
            self.indicators  # noqa: B018 - computes both
        return self._rejected

    @property
    def emitted_indicators(self) -> list[Indicator]:
        """The indicators an adapter other than a store emits: every one but the allow-listed."""
        return [indicator for indicator in self.indicators if not indicator.allowlisted]

    def _screen(self, found: list[_Found]) -> list[Indicator]:
        keep_private = self.gate.keep_private_ips
        covers = self.gate.allowlist.covers if self.gate.allowlist else None
        distinct: dict[tuple[str, str], Indicator] = {}
        rejected: dict[tuple[str, str], Rejection] = {}
        for kind, sent, impact, role, family in found:
            quick = QUICK.get(kind)
            if quick is None or (value := quick(sent)) is None:
                value, reason = cached_verdict(kind, sent, keep_private)
                if value is None:
                    rejected.setdefault((kind, sent), Rejection(kind, sent, reason or "syntax"))
                    continue
            if (key := (kind, value)) not in distinct:
                listed = covers is not None and covers(kind, value)
                distinct[key] = _new_tuple(Indicator, (kind, value, impact, role, family, listed))
        self._rejected = list(rejected.values())
        return list(distinct.values())


@dataclass(frozen=True, slots=True)
class ChangelogEntry:
    """One change in the updates feed: a threat changed, or was deleted, at ``occurred_on`` (ms)."""

    ref: ThreatRef
    deleted: bool
    occurred_on: int | None


def parse_threat(raw: Any, text: str | None = None, gate: Gate = DEFAULT_GATE) -> Threat:
    """Build a :class:`Threat` from one threat object of an API answer.

    ``text`` is the object's JSON text as received (decoded from UTF-8), kept as the threat's
    :attr:`~Threat.json`; without it the JSON text is encoded from ``raw``. ``gate`` decides
    which of its values are indicators and which are allow-listed. Raises
    ThreatFormatError when the object has no usable type, id or publication time, or holds a
    value outside the bounds of :mod:`.limits` (an :class:`~.limits.Unreadable` in its place
    included).
    """
    if isinstance(raw, Unreadable):
        raise ThreatFormatError(f"a threat could not be read: {raw.reason}")
    if not isinstance(raw, dict):
        raise ThreatFormatError(f"a threat must be a JSON object, not {type(raw).__name__}")
    kind = _threat_kind(raw)
    threat_id = _whole_number(raw.get("id"), "id")
    for key in _TIMES:
        if key in raw and isinstance(raw[key], int) and not is_time(raw[key]):
            raise ThreatFormatError(f"threat {threat_id}: {key} {raw[key]} is not a time from 1970 to 9999")
    if text is None and deeper_than(raw):
        raise ThreatFormatError(f"threat {threat_id} is nested deeper than {MAX_DEPTH} levels")
    if kind == MALWARE:
        first = _time(raw, "firstPublished", "lastPublished")
        last = _time(raw, "lastPublished", "firstPublished")
        label = raw.get("label")
    else:
        first = _time(raw, "firstDate", "confirmedDate", "lastDate")
        last = _time(raw, "lastDate", "confirmedDate", "firstDate")
        label = raw.get("title")
    label = label if isinstance(label, str) else ""
    return Threat(kind, threat_id, label, first, last, raw, gate, _json=_json_text(raw, text, threat_id))


def _json_text(raw: dict[str, Any], text: str | None, threat_id: int) -> str:
    """``text``, or ``raw`` encoded; raises ThreatFormatError if the threat holds a lone surrogate.

    Text decoded from UTF-8 holds no lone surrogate, but a ``\\udXXX`` escape in it may decode
    to one: only then is the decoded threat encoded again to find out.
    """
    if text is not None and not _SURROGATE_ESCAPE.search(text):
        return text
    encoded = _encoded(raw)
    try:
        encoded.encode("utf-8")
    except UnicodeEncodeError:
        raise ThreatFormatError(f"threat {threat_id} holds text that is not valid Unicode (a lone surrogate)") from None
    return encoded if text is None else text


def _encoded(raw: Any) -> str:
    """``raw`` as compact JSON text, non-ASCII characters as they are.

    orjson's encoder, or the standard library's for what orjson refuses (an integer past 64
    bits, a key that is not a string, a lone surrogate). The two write the same values; they
    differ only in how some floats are spelt (``1.5e-07``, ``1.5e-7``) and in NaN and
    infinities, which are not JSON (the standard library writes ``NaN``, orjson ``null``).
    """
    try:
        return orjson.dumps(raw).decode()
    except orjson.JSONEncodeError:
        return json.dumps(raw, separators=(",", ":"), ensure_ascii=False)


def parse_changelog_entry(raw: Any) -> ChangelogEntry:
    """Build a :class:`ChangelogEntry`; raises ThreatFormatError when type or id is unusable."""
    if not isinstance(raw, dict):
        raise ThreatFormatError(f"a changelog entry must be a JSON object, not {type(raw).__name__}")
    kind = str(raw.get("threatType", "")).lower()
    if kind not in KINDS:
        raise ThreatFormatError(f"changelog entry with unknown threatType {raw.get('threatType')!r}")
    occurred = raw.get("occurredOn", raw.get("timestamp"))
    return ChangelogEntry(
        ThreatRef(kind, _whole_number(raw.get("threatId"), "threatId")),
        raw.get("deleted") is True,
        occurred if isinstance(occurred, int) and not isinstance(occurred, bool) else None,
    )


def _threat_kind(raw: dict[str, Any]) -> str:
    declared = raw.get("threatType")
    if isinstance(declared, str) and declared.lower() in KINDS:
        return declared.lower()
    if declared is None and "firstPublished" in raw:
        return MALWARE
    if declared is None and "firstDate" in raw:
        return PHISH
    raise ThreatFormatError(f"threat with unknown threatType {declared!r}")


def _whole_number(value: Any, name: str) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_INTEGER:
        return value
    raise ThreatFormatError(f"{name} must be a whole number, not {value!r}")


def _time(raw: dict[str, Any], *keys: str) -> int:
    for key in keys:
        value = raw.get(key)
        if is_time(value) and value > 0:
            return value
    raise ThreatFormatError(f"threat {raw.get('id')!r} has no usable {keys[0]}")


def _items(raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The dict items of a list field; a missing, null or malformed list is empty."""
    value = raw.get(key)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def _string(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _impact(value: Any) -> str | None:
    """One of :data:`IMPACTS`, or None."""
    text = _string(value)
    return text if text in _IMPACTS else None


def _family(value: Any) -> str | None:
    if isinstance(value, dict):
        return _string(value.get("familyName"))
    return _string(value)


def _url_of(value: Any) -> str | None:
    """The URL string of a URL object (``{url, host, ...}``) or of a plain string."""
    if isinstance(value, dict):
        return _string(value.get("url"))
    return _string(value)


def _host_of(value: Any) -> str | None:
    if isinstance(value, dict) and _string(value.get("host")):
        return _string(value.get("host"))
    address = _url_of(value)
    if address is None:
        return None
    try:
        return urlsplit(address if "//" in address else f"//{address}").hostname
    except ValueError:
        return None


_IMPACTS = frozenset(IMPACTS)
#: A value found in a threat, before the gate: kind, value as sent, impact (one of IMPACTS), role, malware family.
_Found = tuple[str, str, "str | None", "str | None", "str | None"]


_new_tuple = tuple.__new__  # an Indicator without a call of Python code (its __new__, its _make)
_IPV4_HOST = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_BLOCK_KINDS = {"URL": "url", "Domain Name": "domain", "IPv4 Address": "ipv4", "Email": "email"}


_EXECUTABLE_HASHES = (("md5", "md5Hex"), ("sha1", "sha1Hex"), ("sha256", "sha256Hex"))
_COUNTED = (("subjectSet", "subject", "subject"), ("senderIpSet", "sender_ip", "ip"),
            ("senderEmailSet", "sender_email", "senderEmail"))


def _malware_indicators(raw: dict[str, Any]) -> list[_Found]:
    found: list[_Found] = []
    add = found.append
    for block in _items(raw, "blockSet"):
        kind = _BLOCK_KINDS.get(_string(block.get("blockType")) or "")
        if kind is not None and (value := _url_of(block.get("data_1")) or _string(block.get("data"))) is not None:
            add((kind, value, _impact(block.get("impact")), _string(block.get("role")),
                 _family(block.get("malwareFamily"))))
    for exe in _items(raw, "executableSet"):
        family = _family(exe.get("malwareFamily"))
        impact = _impact(exe.get("severityLevel"))
        for kind, key in _EXECUTABLE_HASHES:
            if (value := _string(exe.get(key))) is not None:
                add((kind, value, impact, "executable", family))
    for key, kind, field_name in _COUNTED:
        for item in _items(raw, key):
            if (value := _string(item.get(field_name))) is not None:
                add((kind, value, None, None, None))
    return found


def _phish_indicators(raw: dict[str, Any]) -> list[_Found]:
    urls: list[tuple[Any, str]] = [(raw.get("phishingURL_1"), "phishing")]
    urls += [(item, "action") for item in _items(raw, "actionURLs_1")]
    urls += [(item, "reported") for item in _items(raw, "reportedURLs_1")]
    found: list[_Found] = []
    for url_object, role in urls:
        if (url := _url_of(url_object)) is not None:
            found.append(("url", url, "Major", role, None))
        host = _host_of(url_object)
        if host is not None and not _IPV4_HOST.fullmatch(host):  # an address host is the ipDetail's IP
            found.append(("domain", host, "Major", role, None))
    ip_detail = raw.get("ipDetail")
    if isinstance(ip_detail, dict) and (ip := _string(ip_detail.get("ip"))) is not None:
        found.append(("ipv4", ip, "Major", "phishing", None))
    for kit in _items(raw, "kits"):
        for kit_file in _items(kit, "files"):
            for email in _items(kit_file, "emails"):
                if (value := _string(email.get("email"))) is not None:
                    found.append(("email", value, None, "kit", None))
    return found
