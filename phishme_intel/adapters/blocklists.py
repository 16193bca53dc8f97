"""``[integration_blocklists]``: indicator lists a firewall, resolver, proxy or SIEM loads.

``formats = plain`` (the default): one file per indicator kind, ``<folder>/<kind>.txt``, one
value per line, sorted, for a Palo Alto External Dynamic List, a LogRhythm list, a QRadar
reference-set import or a ``curl`` in a script; with ``csv = True`` also
``<folder>/<kind>.csv`` with context columns. The other formats (``rpz``, ``unbound``,
``nftables``, ``ipset``, ``squid``: :mod:`._blocklist_formats`) are built from the same
domain and IPv4 entries, whatever ``kinds`` says.

The lists are not built from the deliveries but from the IOC store, ``[integration_sqlite]``
or ``[integration_postgresql]``, whichever is enabled (the first, when both are): the engine
hands this adapter the store's reader and commits the store first. The lists are rebuilt
whenever a commit follows a delivery or withdrawal, and once at the start of every run (so
a changed ``min_impact`` or the ``max_age_days`` cut-off takes effect even on a run with
nothing new). A withdrawn threat's indicators therefore leave the lists at the commit
that withdraws it, unless another live threat also lists them. Every file is replaced
atomically, and only when its content changed, so a poller's If-Modified-Since works.

Indicators without an impact (kit e-mail addresses, hashes of executables without a
severity) are listed only when ``min_impact = none``. Every value read from the store passes
the indicator gate again (a store written by an earlier release may hold values that are not
indicators: they are left out, with a debug line) and the run's allow-list; subject lines are
never listed. CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return) are neutralised the OWASP way: a leading ``'``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import AdapterError
from ..files import folder_problem, make_folder, reason, write_atomic
from ..models import IMPACTS, INDICATOR_KINDS, Threat, ThreatRef
from ..models.indicators import verdict
from ..models.limits import is_time
from ..options import Option, boolean, choice, integer, path
from . import _blocklist_formats
from .base import Adapter
from .store import StoreReader

DEFAULT_KINDS = ("url", "domain", "ipv4", "email", "md5", "sha256")
LISTED_KINDS = tuple(kind for kind in INDICATOR_KINDS if kind != "subject")
#: What a spreadsheet takes for the start of a formula (OWASP "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "value", "impact", "role", "malware_family", "threat_type", "threat_id", "threat_label",
    "last_published",
)
_RANK = {impact: len(IMPACTS) - position for position, impact in enumerate(IMPACTS)}  # Major 4 .. None 1


def kinds(raw: str) -> tuple[str, ...]:
    """A comma-separated list of the kinds a list may hold (not ``subject``), without repeats, in the order given."""
    found = [word.strip().lower() for word in raw.split(",") if word.strip()]
    unknown = [word for word in found if word not in LISTED_KINDS]
    if unknown or not found:
        raise ValueError(f"must be a comma-separated list of {', '.join(LISTED_KINDS)}, not {raw!r}")
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class Entry:
    """One value of a list, with the context of the strongest (then newest) threat listing it."""

    value: str
    impact: str | None
    role: str | None
    malware_family: str | None
    threat_type: str
    threat_id: int
    threat_label: str | None
    last_published: int

    def precedence(self) -> tuple[int, int, str, int]:
        """Higher impact first, then the newer threat; the threat's identity breaks a tie."""
        return _RANK.get(self.impact or "", 0), self.last_published, self.threat_type, self.threat_id


class BlocklistsAdapter(Adapter):
    """Rebuilds one list per indicator kind from the IOC store at each commit.

    Withdrawal needs nothing of its own: the store adapter deletes the threat's indicators
    and the next rebuild leaves them out. ``sqlite_path`` is no longer needed; a value that
    is not the store's file is ignored, with a warning.
    """

    name = "blocklists"
    options = (
        Option("folder", path, "blocklists"),
        Option("kinds", kinds, DEFAULT_KINDS),
        Option("min_impact", choice("major", "moderate", "minor", "none"), "moderate"),
        Option("max_age_days", integer(0, 36500), 0),
        Option("strip_url_scheme", boolean, False),
        Option("csv", boolean, False),
        Option("formats", _blocklist_formats.formats, ("plain",)),
        Option("sqlite_path", path, None),
    )
    reads_store = True

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> list[str]:
        problem = folder_problem(settings["folder"])
        return [f"folder: {problem}"] if problem else []

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.folder: str = settings["folder"]
        self.kinds: tuple[str, ...] = settings["kinds"]
        self.min_rank: int = 0 if settings["min_impact"] == "none" else _RANK[settings["min_impact"].title()]
        self.max_age_days: int = settings["max_age_days"]
        self.strip_url_scheme: bool = settings["strip_url_scheme"]
        self.csv: bool = settings["csv"]
        self.formats: tuple[str, ...] = settings["formats"]
        self.sqlite_path: str | None = settings["sqlite_path"]
        self._store: StoreReader | None = None
        self._changed = False

    def read_from(self, store: StoreReader) -> None:
        self._store = store
        if self.sqlite_path and (store.path is None or os.path.abspath(store.path) != self.sqlite_path):
            self.log.warning("[integration_blocklists] sqlite_path %s is not needed and ignored: the lists are "
                             "built from the %s", self.sqlite_path, store.where)

    def open(self) -> None:
        try:
            make_folder(self.folder)
        except OSError as exc:
            raise AdapterError(self.name, f"cannot create the folder {self.folder}: {reason(exc)}") from None
        self.rebuild()

    def deliver(self, threats: Sequence[Threat]) -> None:
        self._changed = self._changed or bool(threats)

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        self._changed = self._changed or bool(refs)

    def commit(self) -> None:
        if self._changed:
            self.rebuild()
            self._changed = False

    def rebuild(self) -> None:
        """Write every list from what the store holds now."""
        lists = self._read_store()
        for kind in self.kinds if "plain" in self.formats else ():
            entries = sorted(lists.get(kind, {}).values(), key=lambda entry: entry.value)
            self._write(f"{kind}.txt", "".join(f"{entry.value}\n" for entry in entries).encode())
            if self.csv:
                self._write(f"{kind}.csv", _csv(entries))
            self.log.debug("%s: %d entries", kind, len(entries))
        domains, addresses = sorted(lists.get("domain", {})), sorted(lists.get("ipv4", {}))
        for fmt in self.formats:
            if fmt != "plain":
                for name, data in _blocklist_formats.files(fmt, domains, addresses, self._current).items():
                    self._write(name, data)

    def _read_store(self) -> dict[str, dict[str, Entry]]:
        """The entries of each wanted kind that pass the impact and age filters, by value."""
        if self._store is None:
            raise AdapterError(self.name, "opened without the store it is built from")
        since = int((time.time() - self.max_age_days * 86400) * 1000) if self.max_age_days else 0
        wanted = self._wanted_kinds()
        lists: dict[str, dict[str, Entry]] = {kind: {} for kind in wanted}
        unrenderable: set[str] = set()
        for row in self._store.listed(wanted, since):
            entry = Entry(row.value, row.impact, row.role, row.malware_family, row.threat_type, row.threat_id,
                          row.threat_label, row.last_published)
            if is_time(entry.last_published):
                self._add(lists, row.kind, entry)
            else:
                unrenderable.add(ThreatRef(entry.threat_type, entry.threat_id).api_id)
        if unrenderable:
            self.log.warning(
                "left out the indicators of %d threats whose last_published is not a time from 1970 to 9999 "
                "(stored by an older release; the next delivery of each replaces it): %s",
                len(unrenderable), ", ".join(sorted(unrenderable)[:20]),
            )
        return lists

    def _wanted_kinds(self) -> tuple[str, ...]:
        """The kinds the plain lists and the other formats are built from."""
        wanted = list(self.kinds) if "plain" in self.formats else []
        if set(self.formats) & {"rpz", "unbound", "squid"}:
            wanted.append("domain")
        if set(self.formats) & {"nftables", "ipset", "squid"}:
            wanted.append("ipv4")
        return tuple(dict.fromkeys(wanted))

    def _current(self, name: str) -> bytes | None:
        """The content of a file of the folder, None when there is none."""
        try:
            with open(os.path.join(self.folder, name), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AdapterError(self.name, f"cannot read {os.path.join(self.folder, name)}: {reason(exc)}") from None

    def _add(self, lists: dict[str, dict[str, Entry]], kind: str, entry: Entry) -> None:
        entries = lists.get(kind)
        if entries is None or _RANK.get(entry.impact or "", 0) < self.min_rank:
            return
        value, reason = verdict(kind, entry.value, keep_private_ips=self.gate.keep_private_ips)
        if value is None:
            self.log.debug("left out of the %s list, not an indicator (%s): %r", kind, reason, entry.value)
            return
        if self.gate.allowlist and self.gate.allowlist.covers(kind, value):
            return
        if kind == "url" and self.strip_url_scheme:
            value = value.split("://", 1)[-1]
        if value != entry.value:
            entry = replace(entry, value=value)
        known = entries.get(entry.value)
        entries[entry.value] = entry if known is None else max(known, entry, key=Entry.precedence)

    def _write(self, name: str, data: bytes) -> None:
        target = os.path.join(self.folder, name)
        if self._current(name) == data:
            return
        try:
            write_atomic(target, data)
        except OSError as exc:
            raise AdapterError(self.name, f"cannot write {target}: {reason(exc)}") from None


def _csv(entries: Sequence[Entry]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        published = dt.datetime.fromtimestamp(entry.last_published / 1000, dt.timezone.utc)
        writer.writerow([neutralised(cell) for cell in (
            entry.value, entry.impact or "", entry.role or "", entry.malware_family or "", entry.threat_type,
            str(entry.threat_id), entry.threat_label or "", published.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )])
    return text.getvalue().encode()


def neutralised(cell: str) -> str:
    """``cell`` as a spreadsheet shows it without running it: a ``'`` before a formula's first character."""
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell
