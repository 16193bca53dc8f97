"""The STIX 2.1 objects of a threat, built as plain dicts (for ``adapters/stix2.py``).

Each threat becomes:

- the ``identity`` of Cofense, creator of every other object;
- a ``malware`` object (``is_family``) per malware family the threat names;
- an ``indicator`` per indicator, its pattern matching the value (``url:value``,
  ``domain-name:value``, ``ipv4-addr:value``, ``email-addr:value``, ``file:hashes.MD5`` and
  the SHA hashes, a sender's ``email-message:from_ref.value``, ``email-message:subject``),
  built by :mod:`._stix_patterns` from canonical values only, allow-listed ones left out
  (``LIKE`` only for a validated wildcard domain, ``*.example.com``);
  the impact becomes ``confidence`` (Major 85, Moderate 50, Minor 15, None 0);
- a ``relationship`` ``indicates`` from each indicator to its malware family;
- the threat itself as a ``report`` whose ``object_refs`` name all of the above, with
  external references to the threat detail page and the Active Threat Report.

Ids are UUIDv5 of what the object stands for, and ``created``/``modified`` the threat's
first and last publication times, so a replayed delivery produces the very same objects.

The objects are plain dicts with the properties in the order the ``stix2`` library writes
them, and the same timestamp forms (``created``/``modified`` to the millisecond; other
times with only the digits they need): what the library built before (the same JSON),
without its validation of every object and pattern, which cost 30 times the rest of a
sync. The tests run the OASIS validator over every bundle instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import operator
import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from ..models import Threat
from . import _stix_patterns as patterns

NAMESPACE = uuid.UUID("5b0c2a8e-3f4d-4d6b-9a57-2f1c6de0a7c1")
_NAMESPACE_HASH = hashlib.sha1(NAMESPACE.bytes)  # only ever copied: each id hashes on from a copy
SHARED_TIME = "2013-01-01T00:00:00.000Z"
COFENSE_ID = f"identity--{uuid.uuid5(NAMESPACE, 'identity/cofense')}"
COFENSE = {
    "type": "identity", "spec_version": "2.1", "id": COFENSE_ID, "created": SHARED_TIME, "modified": SHARED_TIME,
    "name": "Cofense", "identity_class": "organization", "sectors": ["technology"],
}
CONFIDENCE = {"Major": 85, "Moderate": 50, "Minor": 15, "None": 0}
#: The properties of each kind of object we revoke, in the order the stix2 library writes them.
ORDER = {
    "indicator": ("type", "spec_version", "id", "created_by_ref", "created", "modified", "name", "description",
                  "indicator_types", "pattern", "pattern_type", "pattern_version", "valid_from", "revoked",
                  "confidence"),
    "relationship": ("type", "spec_version", "id", "created_by_ref", "created", "modified", "relationship_type",
                     "source_ref", "target_ref", "revoked"),
    "report": ("type", "spec_version", "id", "created_by_ref", "created", "modified", "name", "description",
               "report_types", "published", "object_refs", "revoked", "labels", "external_references"),
}
SHARED = ("identity", "malware")
_MALICIOUS = ("malicious-activity",)  # a tuple: shared by every indicator, and nobody can change it
_SECONDS = "%Y-%m-%dT%H:%M:%S"
_ID_OF = operator.itemgetter("id")
_FAMILY_OF = operator.itemgetter(4)  # an Indicator's malware_family
_NO_FAMILY = (None, "")  # an indicator's family's malware id and words when it names none
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}  # RFC 4122: 10xx
#: A SHA-1 hex digest's pieces of UUID text: the version digit (12) left out, the variant's (16) apart.
_UUID_PARTS = operator.itemgetter(slice(0, 8), slice(8, 12), slice(13, 16), 16, slice(17, 20), slice(20, 32))
#: hashlib lets go of the interpreter lock to hash 2048 bytes or more, and a thread that lets go
#: of it waits for it again behind the others (up to the switch interval): a bundle's id is hashed
#: in pieces smaller than that, which take microseconds.
_HASHED_HOLDING_THE_LOCK = 2047


def threat_objects(threat: Threat, log: logging.Logger) -> list[dict[str, Any]]:
    """The STIX objects of one threat, always built the same way from the same threat."""
    api_id = threat.ref.api_id
    created, valid_from = _stamps(threat.first_published)
    modified, published = _stamps(threat.last_published)
    families, spelled = _families(threat)
    malware = {
        key: {
            "type": "malware", "spec_version": "2.1", "id": _id("malware", f"malware/{key}"),
            "created_by_ref": COFENSE_ID, "created": SHARED_TIME, "modified": SHARED_TIME, "name": name,
            "is_family": True,
        }
        for key, name in spelled.items()
    }
    # each family as an indicator names it: its malware object's id, and the end of the indicator's description
    family_of = {name: (malware[name.lower()]["id"], f"; malware family: {name}") for name in families}
    about = f" of Cofense {threat.kind} threat {threat.id}"
    named = _NAMESPACE_HASH.copy()  # the ids of a threat's indicators and relationships hash on from its api id
    named.update(f"{api_id}/".encode())
    # the properties a threat's indicators and relationships share, in order: each is a copy with its own filled in
    indicator_form = {
        "type": "indicator", "spec_version": "2.1", "id": "", "created_by_ref": COFENSE_ID, "created": created,
        "modified": modified, "name": "", "description": "", "indicator_types": _MALICIOUS, "pattern": "",
        "pattern_type": "stix", "pattern_version": "2.1", "valid_from": valid_from,
    }
    relationship_form = {
        "type": "relationship", "spec_version": "2.1", "id": "", "created_by_ref": COFENSE_ID, "created": created,
        "modified": modified, "relationship_type": "indicates", "source_ref": "", "target_ref": "",
    }
    indicators: list[dict[str, Any]] = []
    relationships: list[dict[str, Any]] = []
    for kind, value, impact, role, family_name, _ in threat.emitted_indicators:
        pattern = patterns.gated_pattern(kind, value)
        if pattern is None:
            log.debug("%s %d: no STIX pattern for a %s indicator; skipped", threat.kind, threat.id, kind)
            continue
        impact_said, confidence = _IMPACT_SAID.get(impact) or _impact_said(impact)
        family_id, family_said = family_of.get(family_name, _NO_FAMILY)
        made_id = _id_after(named, "indicator", f"{kind}/{value}")
        made = indicator_form.copy()
        made["id"], made["name"], made["pattern"] = made_id, value, pattern
        made["description"] = f"{kind}{about}{f'; role: {role}' if role else ''}{impact_said}{family_said}"
        if confidence is not None:
            made["confidence"] = confidence
        indicators.append(made)
        if family_id is not None:
            related = relationship_form.copy()
            related["id"] = _id_after(named, "relationship", f"{made_id}/indicates/{family_id}")
            related["source_ref"], related["target_ref"] = made_id, family_id
            relationships.append(related)
    contents = [*malware.values(), *indicators, *relationships]
    report: dict[str, Any] = {
        "type": "report", "spec_version": "2.1", "id": _id("report", api_id), "created_by_ref": COFENSE_ID,
        "created": created, "modified": modified,
        "name": threat.label or f"Cofense {threat.kind} threat {threat.id}",
    }
    if description := _text(threat.raw.get("executiveSummary")):
        report["description"] = description
    report.update({
        "report_types": ["threat-report"], "published": published,
        "object_refs": [COFENSE_ID, *map(_ID_OF, contents)], "labels": [threat.kind],
        "external_references": _references(threat),
    })
    return [COFENSE, *contents, report]


def revoked(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """New versions of the revocable objects, ``revoked`` and modified now (after their last version)."""
    now = time.time_ns() // 1_000_000
    later: dict[str, str] = {}  # each last version's time -> the revocation's (a threat's objects share one)
    result = []
    for obj in objects:
        order = ORDER.get(obj["type"])
        if order is not None:
            before = obj["modified"]
            if before not in later:
                later[before] = _stamps(max(now, _epoch_ms(before) + 1))[0]
            changed = {**obj, "modified": later[before], "revoked": True}
            obj = {key: changed[key] for key in order if key in changed}
        result.append(obj)
    return result


def bundle(objects: list[dict[str, Any]]) -> bytes:
    """A bundle whose id follows from its contents, serialised the same way every time."""
    versions = BundleId()
    versions.add(objects)
    return orjson.dumps({"type": "bundle", "id": versions.id, "objects": objects}, option=orjson.OPT_APPEND_NEWLINE)


def compact(value: Any) -> bytes:
    """``value`` as compact JSON (one line, UTF-8), the form of every bundle.

    orjson writes the bytes ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``
    would, encoded in UTF-8 (every code point escaped or not alike), ten times faster.
    """
    return orjson.dumps(value)


class BundleId:
    """The id of a bundle, UUIDv5 of its objects' ``id@modified`` lines, fed object by object."""

    def __init__(self) -> None:
        self._hash = _NAMESPACE_HASH.copy()
        self._first = True

    def add(self, objects: Iterable[dict[str, Any]]) -> None:
        lines = "\n".join([f"{obj['id']}@{obj['modified']}" for obj in objects])
        if lines:
            data = memoryview(lines.encode() if self._first else f"\n{lines}".encode())
            for start in range(0, len(data), _HASHED_HOLDING_THE_LOCK):
                self._hash.update(data[start:start + _HASHED_HOLDING_THE_LOCK])
            self._first = False

    @property
    def id(self) -> str:
        return _id_after(self._hash, "bundle", "")


def _families(threat: Threat) -> tuple[list[str], dict[str, str]]:
    """The malware families a threat names, each name once; and by lower-case key, the spelling named last.

    Most names repeat (each indicator names its family): the distinct ones are found first.
    """
    names = [_text(item.get("familyName")) for item in _dicts(threat.raw.get("malwareFamilySet"))]
    names += map(_FAMILY_OF, threat.indicators)
    distinct = [name for name in dict.fromkeys(names) if name]
    spelled = {name.lower(): name for name in distinct}
    if len(spelled) < len(distinct):  # spellings that differ in case only: the one named last wins
        spelled = {name.lower(): name for name in names if name}
    return distinct, spelled


def _impact_said(impact: str | None) -> tuple[str, int | None]:
    """How an indicator's description ends with its impact, and its confidence (None for none)."""
    return (f"; impact: {impact}" if impact else ""), CONFIDENCE.get(impact or "")


def _references(threat: Threat) -> list[dict[str, str]]:
    detail = {"source_name": "Cofense Intelligence"}  # the keys in the order the stix2 library writes them
    if url := _text(threat.raw.get("threatDetailURL")):
        detail["url"] = url
    detail["external_id"] = threat.ref.api_id
    references = [detail]
    if report := _text(threat.raw.get("reportURL")):
        references.append({"source_name": "Cofense Active Threat Report", "url": report})
    return references


def _id(kind: str, name: str) -> str:
    """``<kind>--<UUIDv5 of name>``: :func:`uuid.uuid5` without building a UUID object."""
    return _id_after(_NAMESPACE_HASH, kind, name)


def _id_after(hashed: Any, kind: str, rest: str) -> str:
    """:func:`_id` of the name that ``hashed`` (the namespace's SHA-1, fed the name's start) goes on with ``rest``.

    The UUID is the digest's first 16 bytes, version 5 and the RFC 4122 variant: its hex
    text cut by :data:`_UUID_PARTS` (one call, not six slices) around the version digit.
    """
    digest = hashed.copy()
    digest.update(rest.encode())
    first, second, third, variant, fourth, last = _UUID_PARTS(digest.hexdigest())
    return f"{kind}--{first}-{second}-5{third}-{_VARIANT[variant]}{fourth}-{last}"


_IMPACT_SAID = {impact: _impact_said(impact) for impact in (*CONFIDENCE, None)}


def _stamps(epoch_ms: int) -> tuple[str, str]:
    """A STIX timestamp to the millisecond (``2026-11-23T11:30:00.120Z``), and with the digits it needs (``.12Z``)."""
    whole, millis = divmod(epoch_ms, 1000)
    seconds = time.strftime(_SECONDS, time.gmtime(whole))
    fraction = f".{millis:03d}"
    return f"{seconds}{fraction}Z", f"{seconds}{fraction.rstrip('0').rstrip('.')}Z"


def _epoch_ms(stamp: str) -> int:
    moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
