"""``[integration_stix2]``: STIX 2.1 bundles in files, for a threat-intelligence platform to ingest.

Each threat becomes, with the ``stix2`` library:

- the ``identity`` of Cofense, creator of every other object;
- a ``malware`` object (``is_family``) per malware family the threat names;
- an ``indicator`` per indicator, its pattern matching the value (``url:value``,
  ``domain-name:value``, ``ipv4-addr:value``, ``email-addr:value``, ``file:hashes.MD5`` and
  the SHA hashes, a sender's ``email-message:from_ref.value``, ``email-message:subject``);
  a wildcard domain (``*example.com``) or a ``<redacted>`` part becomes a ``LIKE`` pattern;
  the impact becomes ``confidence`` (Major 85, Moderate 50, Minor 15, None 0);
- a ``relationship`` ``indicates`` from each indicator to its malware family;
- the threat itself as a ``report`` whose ``object_refs`` name all of the above, with
  external references to the threat detail page and the Active Threat Report.

Ids are UUIDv5 of what the object stands for, and ``created``/``modified`` the threat's
first and last publication times, so a replayed delivery produces the very same objects.
A withdrawal publishes new versions of the threat's report, indicators and relationships
with ``revoked: true`` (the shared identity and malware objects stay). STIX forbids
un-revoking: if the vendor later publishes a withdrawn threat again, its objects are
written again as first published, which a platform that saw the revocation ignores.

``bundle = threat`` keeps one bundle per threat, ``<folder>/<malware|phish>-<id>.json``,
replaced by each delivery or withdrawal. ``bundle = run`` writes one new bundle per commit,
``<folder>/run-<UTC time>.json``, holding what was delivered or withdrawn since the last
commit, and keeps each threat's latest objects in ``<folder>/.state/`` to revoke them
later. Every file is written whole (temporary file, fsync, rename) at commit; nothing
reaches the folder before then.

With ``taxii_url`` and ``taxii_collection``, each commit first pushes its objects (each
version once) to that TAXII 2.1 collection and counts them delivered only when the TAXII
status and the collection's manifest say the server holds every one (see :mod:`._taxii`);
the files are written after that, and a failed push fails the commit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import stix2
from stix2.exceptions import STIXError
from stix2.utils import parse_into_datetime

from ..errors import AdapterError
from ..files import folder_problem, write_atomic
from ..models import Indicator, Threat, ThreatRef
from ..options import Option, choice, cleartext_problem, integer, number, path, secret, text, url
from ._taxii import TaxiiCollection
from .base import Adapter

NAMESPACE = uuid.UUID("5b0c2a8e-3f4d-4d6b-9a57-2f1c6de0a7c1")
SHARED_TIME = dt.datetime(2013, 1, 1, tzinfo=dt.timezone.utc)
COFENSE = stix2.v21.Identity(
    id=f"identity--{uuid.uuid5(NAMESPACE, 'identity/cofense')}",
    created=SHARED_TIME,
    modified=SHARED_TIME,
    name="Cofense",
    identity_class="organization",
    sectors=["technology"],
)
COFENSE_JSON = json.loads(COFENSE.serialize())
CONFIDENCE = {"Major": 85, "Moderate": 50, "Minor": 15, "None": 0}
PATTERN_PATHS = {
    "url": "url:value",
    "domain": "domain-name:value",
    "ipv4": "ipv4-addr:value",
    "sender_ip": "ipv4-addr:value",
    "email": "email-addr:value",
    "sender_email": "email-message:from_ref.value",
    "subject": "email-message:subject",
    "md5": "file:hashes.MD5",
    "sha1": "file:hashes.'SHA-1'",
    "sha256": "file:hashes.'SHA-256'",
}
REVOCABLE = ("indicator", "relationship", "report")
REDACTED = "<redacted>"


class Stix2Adapter(Adapter):
    """Writes STIX 2.1 bundles to a folder; withdrawal revokes the threat's report and indicators."""

    name = "stix2"
    options = (
        Option("folder", path, "stix2"),
        Option("bundle", choice("threat", "run"), "threat"),
        Option("taxii_url", url("https", "http"), None),
        Option("taxii_collection", text, None),
        Option("taxii_user", text, None),
        Option("taxii_password", secret, None),
        Option("taxii_ca_bundle", path, None),
        Option("taxii_timeout", number(1, 600), 60.0),
        Option("taxii_max_retries", integer(0, 20), 5),
        Option("taxii_retry_backoff", number(0, 60), 1.0),
    )

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> list[str]:
        problems = []
        if problem := folder_problem(settings["folder"]):
            problems.append(f"folder: {problem}")
        if settings["taxii_url"] and not settings["taxii_collection"]:
            problems.append("taxii_collection: is required when taxii_url is set")
        if settings["taxii_collection"] and not settings["taxii_url"]:
            problems.append("taxii_url: is required when taxii_collection is set")
        if bool(settings["taxii_user"]) != bool(settings["taxii_password"]):
            problems.append("taxii_password: taxii_user and taxii_password go together")
        taxii_url, password = settings["taxii_url"], settings["taxii_password"]
        if taxii_url and password and (problem := cleartext_problem(taxii_url, "the TAXII password")):
            problems.append(f"taxii_url: {problem}")
        bundle = settings["taxii_ca_bundle"]
        if bundle and not os.path.isfile(bundle):
            problems.append(f"taxii_ca_bundle: {bundle} is not a readable file")
        return problems

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.folder: str = settings["folder"]
        self.per_run = settings["bundle"] == "run"
        self.state_folder = os.path.join(self.folder, ".state") if self.per_run else self.folder
        self._pending: dict[ThreatRef, list[Any]] = {}
        self._taxii: TaxiiCollection | None = None

    def open(self) -> None:
        try:
            os.makedirs(self.state_folder, exist_ok=True)
        except OSError as exc:
            raise AdapterError(self.name, f"cannot create the folder {self.state_folder}: {exc.strerror}") from None
        if self.settings.get("taxii_url"):  # settings built in code may leave out the optional keys
            self._taxii = TaxiiCollection(self.name, dict(self.settings), self.log)

    def deliver(self, threats: Sequence[Threat]) -> None:
        for threat in threats:
            self._pending.pop(threat.ref, None)
            self._pending[threat.ref] = self._objects(threat)

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        for ref in refs:
            held = self._pending.get(ref) or self._stored(ref)
            if held is None:
                self.log.debug("%s %d was never written; nothing to revoke", ref.kind, ref.id)
                continue
            if any(obj.get("revoked") for obj in held if obj["type"] == "report"):
                continue
            self._pending.pop(ref, None)
            self._pending[ref] = _revoked(held)

    def commit(self) -> None:
        if not self._pending:
            return
        if self._taxii is not None:
            self._taxii.push(_distinct(obj for held in self._pending.values() for obj in held))
        if self.per_run:
            objects = _distinct(obj for held in self._pending.values() for obj in held)
            self._write(self._run_file(), _bundle(objects))
        for ref, held in self._pending.items():
            self._write(self._state_file(ref), _bundle(held))
        self.log.debug("wrote the bundles of %d threats to %s", len(self._pending), self.folder)
        self._pending.clear()

    def close(self) -> None:
        self._pending.clear()
        if self._taxii is not None:
            self._taxii.close()
            self._taxii = None

    def _objects(self, threat: Threat) -> list[Any]:
        """The STIX objects of one threat, always built the same way from the same threat."""
        first, last = _time(threat.first_published), _time(threat.last_published)
        common = {"created_by_ref": COFENSE.id, "created": first, "modified": last}
        families = {name.lower(): name for name in _families(threat)}
        malware = {
            key: stix2.v21.Malware(
                id=_id("malware", f"malware/{key}"), created=SHARED_TIME, modified=SHARED_TIME,
                created_by_ref=COFENSE.id, name=name, is_family=True,
            )
            for key, name in families.items()
        }
        indicators: list[Any] = []
        relationships: list[Any] = []
        for indicator in threat.indicators:
            made = self._indicator(threat, indicator, common)
            if made is None:
                continue
            indicators.append(made)
            family = malware.get((indicator.malware_family or "").lower())
            if family is not None:
                relationships.append(stix2.v21.Relationship(
                    id=_id("relationship", f"{threat.ref.api_id}/{made.id}/indicates/{family.id}"),
                    relationship_type="indicates", source_ref=made.id, target_ref=family.id, **common,
                ))
        contents = [*malware.values(), *indicators, *relationships]
        report = stix2.v21.Report(
            id=_id("report", threat.ref.api_id),
            name=threat.label or f"Cofense {threat.kind} threat {threat.id}",
            description=_text(threat.raw.get("executiveSummary")),
            report_types=["threat-report"],
            labels=[threat.kind],
            published=last,
            object_refs=[COFENSE.id, *(obj.id for obj in contents)],
            external_references=_references(threat),
            **common,
        )
        return [COFENSE_JSON, *(_plain(obj) for obj in [*contents, report])]

    def _indicator(self, threat: Threat, indicator: Indicator, common: dict[str, Any]) -> Any:
        pattern = _pattern(indicator)
        if pattern is None:
            self.log.debug("%s %d: no STIX pattern for a %s indicator; skipped", threat.kind, threat.id, indicator.kind)
            return None
        details = [f"{indicator.kind} of Cofense {threat.kind} threat {threat.id}"]
        details += [f"{label}: {value}" for label, value in (
            ("role", indicator.role), ("impact", indicator.impact), ("malware family", indicator.malware_family),
        ) if value]
        try:
            return stix2.v21.Indicator(
                id=_id("indicator", f"{threat.ref.api_id}/{indicator.kind}/{indicator.value}"),
                name=indicator.value,
                description="; ".join(details),
                indicator_types=["malicious-activity"],
                pattern=pattern,
                pattern_type="stix",
                valid_from=common["created"],
                confidence=CONFIDENCE.get(indicator.impact or ""),
                **common,
            )
        except STIXError as exc:
            self.log.debug("%s %d: %s indicator %r skipped: %s", threat.kind, threat.id, indicator.kind,
                           indicator.value, exc)
            return None

    def _state_file(self, ref: ThreatRef) -> str:
        return os.path.join(self.state_folder, f"{ref.kind}-{ref.id}.json")

    def _run_file(self) -> str:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        candidate = os.path.join(self.folder, f"run-{stamp}.json")
        serial = 1
        while os.path.exists(candidate):
            candidate = os.path.join(self.folder, f"run-{stamp}-{serial}.json")
            serial += 1
        return candidate

    def _stored(self, ref: ThreatRef) -> list[Any] | None:
        target = self._state_file(ref)
        try:
            with open(target, encoding="utf-8") as handle:
                return list(json.load(handle)["objects"])
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AdapterError(self.name, f"cannot read {target}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError):
            raise AdapterError(self.name, f"{target} is not a STIX bundle this adapter wrote") from None

    def _write(self, target: str, data: bytes) -> None:
        try:
            write_atomic(target, data, mode=0o644)
        except OSError as exc:
            raise AdapterError(self.name, f"cannot write {target}: {exc.strerror or exc}") from None


def _pattern(indicator: Indicator) -> str | None:
    """A STIX pattern matching the indicator; ``LIKE`` for wildcard domains and redacted parts."""
    target = PATTERN_PATHS.get(indicator.kind)
    if target is None:
        return None
    value = indicator.value
    wildcard = indicator.kind == "domain" and value.startswith("*")
    if wildcard or REDACTED in value:
        value = value.lstrip("*") if wildcard else value
        like = ("%" if wildcard else "") + "%".join(_quoted(part) for part in value.split(REDACTED))
        return f"[{target} LIKE '{like}']"
    return f"[{target} = '{_quoted(value)}']"


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _families(threat: Threat) -> list[str]:
    names = [_text(item.get("familyName")) for item in _dicts(threat.raw.get("malwareFamilySet"))]
    names += [indicator.malware_family for indicator in threat.indicators]
    return [name for name in names if name]


def _references(threat: Threat) -> list[dict[str, str]]:
    detail = {"source_name": "Cofense Intelligence", "external_id": threat.ref.api_id}
    if url := _text(threat.raw.get("threatDetailURL")):
        detail["url"] = url
    references = [detail]
    if report := _text(threat.raw.get("reportURL")):
        references.append({"source_name": "Cofense Active Threat Report", "url": report})
    return references


def _revoked(objects: list[Any]) -> list[Any]:
    """New versions of the revocable objects, ``revoked`` and modified now (after their last version)."""
    revoked = []
    for obj in objects:
        if obj["type"] in REVOCABLE:
            previous = parse_into_datetime(obj["modified"], precision="millisecond")
            modified = max(_time(time.time_ns() // 1_000_000), previous + dt.timedelta(milliseconds=1))
            obj = _plain(stix2.parse(obj, allow_custom=False).new_version(revoked=True, modified=modified))
        revoked.append(obj)
    return revoked


def _distinct(objects: Iterable[Any]) -> list[Any]:
    """Each (id, modified) version once: shared objects appear in many threats."""
    seen: dict[tuple[str, str], Any] = {}
    for obj in objects:
        seen.setdefault((obj["id"], obj["modified"]), obj)
    return list(seen.values())


def _bundle(objects: list[Any]) -> bytes:
    """A bundle whose id follows from its contents, serialised the same way every time."""
    versions = "\n".join(f"{obj['id']}@{obj['modified']}" for obj in objects)
    bundle = {"type": "bundle", "id": _id("bundle", versions), "objects": objects}
    return (json.dumps(bundle, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _plain(obj: Any) -> dict[str, Any]:
    """A stix2 object as a plain dict in the library's own key order."""
    return json.loads(obj.serialize())


def _id(kind: str, name: str) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, name)}"


def _time(epoch_ms: int) -> dt.datetime:
    whole, millis = divmod(epoch_ms, 1000)
    return dt.datetime.fromtimestamp(whole, dt.timezone.utc).replace(microsecond=millis * 1000)


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
