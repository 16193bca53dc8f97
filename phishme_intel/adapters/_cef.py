"""CEF events from a threat, after the vendor's mapping (``docs/api.rst``), and CEF escaping.

One event per indicator:

================  ==================  ======================  ========  ===================================
threat kind       indicator           signature id, name      severity  where the value goes
================  ==================  ======================  ========  ===================================
malware           URL                 ``watchlist_url``       impact    ``cs4``
malware           domain              ``watchlist_domain``    impact    ``cs4``
malware           IPv4                ``watchlist_ip``        impact    ``dst``
malware           e-mail              ``watchlist_email``     impact    ``cs4`` (our choice: the vendor has none)
malware           MD5, SHA-1, SHA256  ``malicious_file``      severity  ``fileHash``, with ``fname``
phish             each URL            ``phish_confirmed``     10        ``cs4``, its host ``dhost``, domain ``cs3``
phish             kit e-mail          ``watchlist_email``     10        ``cs4``
================  ==================  ======================  ========  ===================================

Impact maps to severity as Major 10, Moderate 7, Minor 4, None 0 (an executable's
``severityLevel`` likewise; 10 when it has none). Malware events carry ``externalId``,
``deviceCustomDate1`` (first published, ms), ``cat`` (impact), ``cs1`` family, ``cs2``
brands, ``cs3`` role, ``cs5`` threat detail URL and ``cs6`` Active Threat Report URL;
phish events ``externalId``, ``deviceCustomDate1`` (first seen), ``dst`` (the phishing
host's IP, on the phishing URL's event), ``cs2`` brands, ``cs5`` threat detail URL and
``cs6`` screenshot URL. Subjects, sender IPs and sender addresses have no event.

A withdrawn threat gives one removal event: signature ``threat_removed`` "Threat Removed",
severity 0, ``act=remove`` and the threat's ``externalId``, under the product of its kind.

Escaping applies to every value: ``\\`` and ``|`` in the header; ``\\``, ``=``, CR and LF in
extension values (as ``\\\\``, ``\\=``, ``\\r``, ``\\n``). Other control characters, which
syslog receivers mishandle, become spaces. Values longer than the CEF specification allows
for their key are cut to that length.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..models import MALWARE, Threat, ThreatRef
from ..models.indicators import url_host, verdict

VERSION = "1.0"
PRODUCTS = {MALWARE: "Intelligence", "phish": "Brand Intelligence"}
SEVERITY = {"Major": 10, "Moderate": 7, "Minor": 4, "None": 0}
LABELS = {
    "deviceCustomDate1": "First Published",
    "cs1": "Malware Family",
    "cs2": "Brand",
    "cs3": "Infrastructure Type",
    "cs5": "Threat Detail URL",
    "cs6": "Active Threat Report URL",
}
PHISH_LABELS = {
    **LABELS, "deviceCustomDate1": "First Seen", "cs3": "Phishing Domain", "cs6": "Screenshot URL",
}
VALUE_LABELS = {"url": "URL", "domain": "Domain", "email": "Email Address"}
_MALWARE_SIGNATURES = {
    "url": ("watchlist_url", "Watchlist URL"),
    "domain": ("watchlist_domain", "Watchlist Domain"),
    "ipv4": ("watchlist_ip", "Watchlist IP"),
    "email": ("watchlist_email", "Watchlist Email"),
}
_FILE = ("malicious_file", "Malicious File")
_PHISH = ("phish_confirmed", "Phish Confirmed")
_EMAIL = _MALWARE_SIGNATURES["email"]
_REMOVED = ("threat_removed", "Threat Removed")
#: Kinds of indicators that get no event (no signature fits them).
UNSENT_KINDS = frozenset({"subject", "sender_ip", "sender_email"})
_LIMITS = {"externalId": 40, "fileHash": 255, "fname": 1023, "dhost": 1023, "cat": 1023, "act": 63}
_DEFAULT_LIMIT = 4000
_CONTROLS = {code: " " for code in (*range(0x20), 0x7F)}
_HEADER_ESCAPES = {**_CONTROLS, ord("\\"): "\\\\", ord("|"): "\\|"}
_CONTROL_ESCAPES = {**_CONTROLS, ord("\r"): "\\r", ord("\n"): "\\n"}
_HEADER_SPECIAL = re.compile(r"[\\|\x00-\x1f\x7f]")
_extension_special = re.compile(r"[\\=\x00-\x1f\x7f]").search
_control = re.compile(r"[\x00-\x1f\x7f]").search


@dataclass(frozen=True, slots=True)
class Fields:
    """Extensions several events carry, formatted once for all of them: ``pairs`` and their text.

    The text ends in a space (other extensions follow), or is empty when no pair has a value.
    """

    pairs: tuple[tuple[str, Any], ...]
    text: str

    @classmethod
    def of(cls, pairs: tuple[tuple[str, Any], ...]) -> Fields:
        text = _extensions(pairs)
        return cls(pairs, f"{text} " if text else "")


NO_FIELDS = Fields((), "")


class Event(NamedTuple):
    """One CEF event before formatting: the header's product, signature, name and severity, and extensions.

    ``own`` are the extensions of this event alone; they follow those it shares with other
    events, formatted once: its threat's (``common``), then those its indicator's impact,
    malware family, role and kind give (``described``: a few hundred combinations across
    threats). A named tuple, not a dataclass: a W1 backfill makes 178,000 of them.
    """

    product: str
    signature: str
    name: str
    severity: int
    own: tuple[tuple[str, Any], ...]
    common: Fields = NO_FIELDS
    described: Fields = NO_FIELDS

    @property
    def extensions(self) -> tuple[tuple[str, Any], ...]:
        """Every extension in the order they are formatted (empty values included, they are left out then)."""
        return self.common.pairs + self.described.pairs + self.own

    def format(self, vendor: str, before: str = "") -> str:
        """The event as one CEF line (no newline), ``vendor`` in its header, after ``before`` (a syslog header)."""
        own = _extensions(self.own)
        line = f"{before}{_head(vendor, self.product, self.signature, self.name, self.severity)}" \
               f"{self.common.text}{self.described.text}{own}"
        return line if own else line.removesuffix(" ")  # the space a shared text ends in, when nothing follows


#: An Event made of its fields in one tuple, in C: the named tuple's own __new__ is a Python call,
#: and the malware events of a W1 backfill are 164,000.
_event = functools.partial(tuple.__new__, Event)


@functools.lru_cache(maxsize=256)
def _head(vendor: str, product: str, signature: str, name: str, severity: int) -> str:
    """The line up to the extensions, header fields escaped: a handful of combinations, made once each."""
    fields = "|".join(escape_header(part) for part in (vendor, product, VERSION, signature, name))
    return f"CEF:0|{fields}|{severity}|"


def _extensions(pairs: tuple[tuple[str, Any], ...]) -> str:
    """``key=value`` of each pair with a value, cut and escaped, joined by spaces.

    A value's backslash, equals sign, CR and LF are escaped, other control characters become
    spaces. The search for them is inlined here, where every event's values pass; backslashes
    (first) and equals signs, which URLs often have, are replaced by str.replace, many times
    faster than a translate whose table has replacements of two characters.
    """
    texts = []
    for key, value in pairs:
        if value is None or value == "":
            continue
        text = str(value)[:_LIMITS.get(key, _DEFAULT_LIMIT)]
        if _extension_special(text):
            text = text.replace("\\", "\\\\").replace("=", "\\=")
            if _control(text):
                text = text.translate(_CONTROL_ESCAPES)
        texts.append(f"{key}={text}")
    return " ".join(texts)


def escape_header(value: str) -> str:
    """A CEF header field: backslash and pipe escaped, line breaks and control characters as spaces."""
    return value.translate(_HEADER_ESCAPES) if _HEADER_SPECIAL.search(value) else value


def threat_events(threat: Threat) -> list[Event]:
    """The events of a threat: one per indicator it can express (see the module docstring)."""
    if threat.kind == MALWARE:
        return _malware_events(threat)
    return list(_phish_events(threat))


def removal_event(ref: ThreatRef) -> Event:
    """The event that says the vendor withdrew the threat ``ref``."""
    return Event(PRODUCTS[ref.kind], *_REMOVED, 0, (("act", "remove"), ("externalId", ref.id)))


#: The malware indicator kinds that have an event, to the form of their events (file hashes share one).
_MALWARE_FORM_KINDS = {
    **{kind: kind for kind in (*VALUE_LABELS, "ipv4")}, **{kind: "file" for kind in ("md5", "sha1", "sha256")},
}


def _malware_events(threat: Threat) -> list[Event]:
    raw = threat.raw
    common = Fields.of((
        ("externalId", threat.id), *_labelled("deviceCustomDate1", threat.first_published),
        *_labelled("cs2", _brands(raw)), *_labelled("cs5", _text(raw.get("threatDetailURL"))),
        *_labelled("cs6", _text(raw.get("reportURL"))),
    ))
    files = _file_names(raw)
    product = PRODUCTS[MALWARE]
    events = []
    for kind, value, impact, role, family, _allowlisted in threat.emitted_indicators:
        if (form_kind := _MALWARE_FORM_KINDS.get(kind)) is None:
            continue
        signature, name, severity, value_key, described = _malware_form(form_kind, impact, role, family)
        own = ((value_key, value),) if value_key else (("fname", files.get(value)), ("fileHash", value))
        events.append(_event((product, signature, name, severity, own, common, described)))
    return events


@functools.lru_cache(maxsize=1024)
def _malware_form(
    form_kind: str, impact: str | None, role: str | None, family: str | None,
) -> tuple[str, str, int, str | None, Fields]:
    """What the events of a kind of malware indicator of an impact, role and family carry but their value.

    Their signature, name, severity, the key of their value (None: a file hash, which goes
    in ``fileHash`` with its ``fname``) and their impact, family and role (and ``cs4Label``:
    the gate lets no empty value through, so the label always goes with its value). A few
    hundred combinations across threats, made once each.
    """
    described = (("cat", impact), *_labelled("cs1", family), *_labelled("cs3", role))
    if form_kind == "file":
        return *_FILE, SEVERITY.get(impact or "", 10), None, Fields.of(described)
    signature, name = _MALWARE_SIGNATURES[form_kind]
    if form_kind == "ipv4":
        return signature, name, SEVERITY.get(impact or "", 0), "dst", Fields.of(described)
    label = ("cs4Label", VALUE_LABELS[form_kind])
    return signature, name, SEVERITY.get(impact or "", 0), "cs4", Fields.of((*described, label))


def _phish_events(threat: Threat) -> Iterator[Event]:
    raw = threat.raw
    product = PRODUCTS[threat.kind]
    common = Fields.of((
        ("externalId", threat.id),
        *_labelled("deviceCustomDate1", threat.first_published, PHISH_LABELS["deviceCustomDate1"]),
        *_labelled("cs2", _brands(raw)), *_labelled("cs5", _text(raw.get("threatDetailURL"))),
        *_labelled("cs6", _text(_field(raw, "screenshot", "url_1", "url")), PHISH_LABELS["cs6"]),
    ))
    ip = next((indicator.value for indicator in threat.emitted_indicators if indicator.kind == "ipv4"), None)
    phishing = _text(_field(raw, "phishingURL_1", "url"))
    hosts = _url_objects(raw, threat.gate.keep_private_ips)
    ip_sent = False
    for indicator in threat.emitted_indicators:
        if indicator.kind == "url":
            host, domain = hosts.get(indicator.value, (None, None))
            with_ip = indicator.value == phishing and ip is not None
            ip_sent = ip_sent or with_ip
            yield Event(product, *_PHISH, 10, (
                ("dst", ip if with_ip else None), ("dhost", host),
                *_labelled("cs3", domain, PHISH_LABELS["cs3"]), *_labelled("cs4", indicator.value, VALUE_LABELS["url"]),
            ), common)
        elif indicator.kind == "email":
            yield Event(product, *_EMAIL, 10, _labelled("cs4", indicator.value, VALUE_LABELS["email"]), common)
    if ip is not None and not ip_sent:
        yield Event(product, *_PHISH, 10, (("dst", ip),), common)


def _labelled(key: str, value: Any, label: str | None = None) -> tuple[tuple[str, Any], ...]:
    """``(key, value)`` preceded by ``(keyLabel, label)``; nothing when the value is empty."""
    if value is None or value == "":
        return ()
    return ((f"{key}Label", label or LABELS[key]), (key, value))


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _field(raw: dict[str, Any], *keys: str) -> Any:
    """``raw[k1][k2]...``, or None as soon as a level is missing or not an object."""
    value: Any = raw
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _items(raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = raw.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _brands(raw: dict[str, Any]) -> str | None:
    if "brands" in raw:
        names = [_text(brand.get("text")) for brand in _items(raw, "brands")]
    else:
        names = [_text(_field(item, "brand", "text")) for item in _items(raw, "campaignBrandSet")]
    return ", ".join(dict.fromkeys(name for name in names if name and name != "None")) or None


def _file_names(raw: dict[str, Any]) -> dict[str, str]:
    """Each executable hash (lower case) of a malware threat, to its file name."""
    names: dict[str, str] = {}
    for exe in _items(raw, "executableSet"):
        if name := _text(exe.get("fileName")):
            for key in ("md5Hex", "sha1Hex", "sha256Hex"):  # _text inlined: three calls an executable
                if isinstance(digest := exe.get(key), str) and (digest := digest.strip()):
                    names.setdefault(digest.lower(), name)
    return names


def _url_objects(raw: dict[str, Any], keep_private_ips: bool) -> dict[str, tuple[str | None, str | None]]:
    """Each canonical URL of a phish threat, to its host and registered domain (canonical, from the URL object).

    The URLs are judged as the gate judged the threat's (``keep_private_ips`` its own), so
    the verdicts are those it cached.
    """
    objects = [raw.get("phishingURL_1"), *_items(raw, "actionURLs_1"), *_items(raw, "reportedURLs_1")]
    found: dict[str, tuple[str | None, str | None]] = {}
    for url_object in objects:
        if isinstance(url_object, dict) and (url := _text(url_object.get("url"))):
            if (canonical_url := verdict("url", url, keep_private_ips=keep_private_ips).value) is None:
                continue
            host = url_host(canonical_url)
            domain = verdict("domain", _text(url_object.get("domain")) or host).value
            found.setdefault(canonical_url, (host, domain))
    return found
