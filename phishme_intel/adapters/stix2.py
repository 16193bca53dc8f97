"""``[integration_stix2]``: STIX 2.1 bundles in files, for a threat-intelligence platform to ingest.

Each threat becomes the STIX objects :mod:`._stix` builds (the Cofense identity, malware
families, an indicator per indicator, ``indicates`` relationships, and the threat as a
report); ids are UUIDv5 of what each object stands for, so a replayed delivery produces the
very same objects. A withdrawal publishes new versions of the threat's report, indicators
and relationships with ``revoked: true`` (the shared identity and malware objects stay).
STIX forbids un-revoking: if the vendor later publishes a withdrawn threat again, its
objects are written again as first published, which a platform that saw the revocation
ignores.

``bundle = threat`` keeps one bundle per threat, ``<folder>/<malware|phish>-<id>.json``,
replaced by each delivery or withdrawal. ``bundle = run`` writes one new bundle per commit,
``<folder>/run-<UTC time>.json``, holding what was delivered or withdrawn since the last
commit, and keeps each threat's latest objects in ``<folder>/.state/`` to revoke them
later. Nothing reaches a file a platform reads before the commit: until then each threat's
bundle waits in a hidden file beside its final one (``.<kind>-<id>.json.pending``, see
:class:`~phishme_intel.file_batch.FileBatch`; a run that dies leaves them for the next to
remove), so the memory a run needs does not grow with the number of threats a commit
covers. The commit writes the run bundle (streamed from those files), syncs the file system
once and renames each of them over its final name; every file appears whole. Bundles are
compact JSON, one line each.

With ``taxii_url`` and ``taxii_collection``, each commit first pushes its objects (each
version once) to that TAXII 2.1 collection and counts them delivered only when the TAXII
status and the collection's manifest say the server holds every one (see :mod:`._taxii`);
the files are written after that, and a failed push fails the commit.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from ..errors import AdapterError
from ..file_batch import FileBatch, remove_pending
from ..files import folder_problem, make_folder, reason, write_atomic_chunks
from ..models import Threat, ThreatRef
from ..options import Option, choice, cleartext_problem, integer, number, path, secret, text, url
from . import _stix
from ._taxii import TaxiiCollection
from .base import Adapter


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
        self._batch = FileBatch()
        self._staged: dict[ThreatRef, str] = {}  # threat -> its bundle file, in delivery order
        self._taxii: TaxiiCollection | None = None

    def open(self) -> None:
        try:
            for folder in dict.fromkeys((self.folder, self.state_folder)):
                make_folder(folder)
            remove_pending(self.state_folder)  # left by a run that died before its commit
        except OSError as exc:
            raise AdapterError(self.name, f"cannot prepare the folder {exc.filename}: {reason(exc)}") from None
        if self.settings.get("taxii_url"):  # settings built in code may leave out the optional keys
            self._taxii = TaxiiCollection(self.name, dict(self.settings), self.log)

    def deliver(self, threats: Sequence[Threat]) -> None:
        for threat in threats:
            self._stage(threat.ref, _stix.threat_objects(threat, self.log))

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        for ref in refs:
            staged = self._staged.get(ref)
            held = self._read(self._batch.pending(staged)) if staged else self._stored(ref)
            if held is None:
                self.log.debug("%s %d was never written; nothing to revoke", ref.kind, ref.id)
                continue
            if any(obj.get("revoked") for obj in held if obj["type"] == "report"):
                continue
            self._stage(ref, _stix.revoked(held))

    def commit(self) -> None:
        if not self._staged:
            return
        if self._taxii is not None:
            self._taxii.push(self._commit_objects())
        if self.per_run:
            self._write_run_bundle()
        try:
            self._batch.commit()
        except OSError as exc:
            raise AdapterError(self.name, f"cannot write {exc.filename}: {exc.strerror or exc}") from None
        self.log.debug("wrote the bundles of %d threats to %s", len(self._staged), self.folder)
        self._staged.clear()

    def close(self) -> None:
        self._batch.discard()
        self._staged.clear()
        if self._taxii is not None:
            self._taxii.close()
            self._taxii = None

    def _stage(self, ref: ThreatRef, objects: list[dict[str, Any]]) -> None:
        """Hold ``objects`` as the bundle ``ref`` gets at the next commit."""
        target = self._state_file(ref)
        try:
            self._batch.write(target, [_stix.bundle(objects)])
        except OSError as exc:  # this bundle's, or one written before it (see FileBatch)
            raise AdapterError(self.name, f"cannot write {exc.filename}: {exc.strerror or exc}") from None
        self._staged.pop(ref, None)
        self._staged[ref] = target

    def _commit_objects(self) -> Iterator[dict[str, Any]]:
        """Every object of this commit, each version once, read back one threat at a time."""
        for objects in self._commit_threats():
            yield from objects

    def _commit_threats(self) -> Iterator[list[dict[str, Any]]]:
        """The objects of each threat of this commit, read back in turn; each version once across them all."""
        shared: set[tuple[str, str]] = set()
        for target in self._staged.values():
            objects = []
            for obj in self._read(self._batch.pending(target)):
                if obj["type"] in _stix.SHARED:
                    version = (obj["id"], obj["modified"])
                    if version in shared:
                        continue
                    shared.add(version)
                objects.append(obj)
            yield objects

    def _write_run_bundle(self) -> None:
        """``<folder>/run-<UTC time>.json``: this commit's objects as one bundle, streamed to the file."""
        bundle_id = _stix.BundleId()
        bundle_id.add(self._commit_objects())
        target = self._run_file()

        def chunks() -> Iterator[bytes]:
            yield f'{{"type":"bundle","id":"{bundle_id.id}","objects":['.encode()
            separator = b""
            for objects in self._commit_threats():  # a threat's objects in one write
                if objects:
                    yield separator + b",".join(map(_stix.compact, objects))
                    separator = b","
            yield b"]}\n"

        try:
            write_atomic_chunks(target, chunks())
        except OSError as exc:
            raise AdapterError(self.name, f"cannot write {target}: {exc.strerror or exc}") from None

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

    def _stored(self, ref: ThreatRef) -> list[dict[str, Any]] | None:
        try:
            return self._read(self._state_file(ref))
        except FileNotFoundError:
            return None

    def _read(self, bundle: str) -> list[dict[str, Any]]:
        """The objects of a bundle this adapter wrote; FileNotFoundError if there is none."""
        try:
            with open(bundle, "rb") as handle:
                return list(orjson.loads(handle.read())["objects"])
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise AdapterError(self.name, f"cannot read {bundle}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError):
            raise AdapterError(self.name, f"{bundle} is not a STIX bundle this adapter wrote") from None
