"""``[integration_blocklists]``: plain-text indicator lists a firewall or SIEM polls.

One file per indicator kind, ``<folder>/<kind>.txt``, one value per line, sorted, for a
Palo Alto External Dynamic List, a LogRhythm list, a QRadar reference-set import or a
``curl`` in a script; with ``csv = True`` also ``<folder>/<kind>.csv`` with context columns.

The lists are not built from the deliveries but from the SQLite store that
``[integration_sqlite]`` keeps (which the config puts first among the adapters): they are
rebuilt whenever a commit follows a delivery or withdrawal, and once at the start of every
run (so a changed ``min_impact`` or the ``max_age_days`` cut-off takes effect even on a run
with nothing new). A withdrawn threat's indicators therefore leave the lists at the commit
that withdraws it, unless another live threat also lists them. Every file is replaced
atomically, and only when its content changed, so a poller's If-Modified-Since works.

Indicators without an impact (kit e-mail addresses, hashes of executables without a
severity) are listed only when ``min_impact = none``. Values a line-based list cannot hold
(containing blanks or control characters) are left out, with a debug line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import AdapterError
from ..files import folder_problem, make_folder, reason, write_atomic
from ..models import IMPACTS, INDICATOR_KINDS, Threat, ThreatRef
from ..models.limits import is_time
from ..options import Option, boolean, choice, integer, path
from .base import Adapter

DEFAULT_KINDS = ("url", "domain", "ipv4", "email", "md5", "sha256")
CSV_COLUMNS = (
    "value", "impact", "role", "malware_family", "threat_type", "threat_id", "threat_label",
    "last_published",
)
_RANK = {impact: len(IMPACTS) - position for position, impact in enumerate(IMPACTS)}  # Major 4 .. None 1
_QUERY = """
SELECT i.kind, i.value, i.impact, i.role, i.malware_family, t.threat_type, t.threat_id, t.label, t.last_published
FROM indicators AS i JOIN threats AS t ON t.threat_type = i.threat_type AND t.threat_id = i.threat_id
WHERE t.last_published >= ? AND i.kind IN ({kinds})
"""


def kinds(raw: str) -> tuple[str, ...]:
    """A comma-separated list of indicator kinds, without repeats, in the order given."""
    found = [word.strip().lower() for word in raw.split(",") if word.strip()]
    unknown = [word for word in found if word not in INDICATOR_KINDS]
    if unknown or not found:
        raise ValueError(f"must be a comma-separated list of {', '.join(INDICATOR_KINDS)}, not {raw!r}")
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
    """Rebuilds one list per indicator kind from the SQLite store at each commit.

    Withdrawal needs nothing of its own: the sqlite adapter deletes the threat's indicators
    and the next rebuild leaves them out.
    """

    name = "blocklists"
    options = (
        Option("folder", path, "blocklists"),
        Option("kinds", kinds, DEFAULT_KINDS),
        Option("min_impact", choice("major", "moderate", "minor", "none"), "moderate"),
        Option("max_age_days", integer(0, 36500), 0),
        Option("strip_url_scheme", boolean, False),
        Option("csv", boolean, False),
        Option("sqlite_path", path, "phishme_intel.sqlite3"),
    )

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> list[str]:
        problems = []
        if problem := folder_problem(settings["folder"]):
            problems.append(f"folder: {problem}")
        if problem := _store_problem(settings["sqlite_path"]):
            problems.append(f"sqlite_path: {problem}")
        return problems

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.folder: str = settings["folder"]
        self.kinds: tuple[str, ...] = settings["kinds"]
        self.min_rank: int = 0 if settings["min_impact"] == "none" else _RANK[settings["min_impact"].title()]
        self.max_age_days: int = settings["max_age_days"]
        self.strip_url_scheme: bool = settings["strip_url_scheme"]
        self.csv: bool = settings["csv"]
        self.sqlite_path: str = settings["sqlite_path"]
        self._changed = False

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
        """Write every list from what the SQLite store holds now."""
        lists = self._read_store()
        for kind in self.kinds:
            entries = sorted(lists.get(kind, {}).values(), key=lambda entry: entry.value)
            self._write(f"{kind}.txt", "".join(f"{entry.value}\n" for entry in entries).encode())
            if self.csv:
                self._write(f"{kind}.csv", _csv(entries))
            self.log.debug("%s: %d entries", kind, len(entries))

    def _read_store(self) -> dict[str, dict[str, Entry]]:
        """The entries of each wanted kind that pass the impact and age filters, by value."""
        if problem := _store_problem(self.sqlite_path, built=True):
            raise AdapterError(self.name, problem)
        since = int((time.time() - self.max_age_days * 86400) * 1000) if self.max_age_days else 0
        lists: dict[str, dict[str, Entry]] = {kind: {} for kind in self.kinds}
        unrenderable: set[str] = set()
        try:
            with _reading(self.sqlite_path) as db:
                query = _QUERY.format(kinds=", ".join("?" * len(self.kinds)))
                for kind, *row in db.execute(query, (since, *self.kinds)):
                    entry = Entry(*row)
                    if is_time(entry.last_published):
                        self._add(lists, kind, entry)
                    else:
                        unrenderable.add(ThreatRef(entry.threat_type, entry.threat_id).api_id)
        except sqlite3.Error as exc:
            raise AdapterError(self.name, f"cannot read the SQLite store {self.sqlite_path}: {exc}") from None
        if unrenderable:
            self.log.warning(
                "left out the indicators of %d threats whose last_published is not a time from 1970 to 9999 "
                "(stored by an older release; the next delivery of each replaces it): %s",
                len(unrenderable), ", ".join(sorted(unrenderable)[:20]),
            )
        return lists

    def _add(self, lists: dict[str, dict[str, Entry]], kind: str, entry: Entry) -> None:
        entries = lists.get(kind)
        if entries is None or _RANK.get(entry.impact or "", 0) < self.min_rank:
            return
        if kind == "url" and self.strip_url_scheme:
            entry = replace(entry, value=entry.value.split("://", 1)[-1])
        if not entry.value.isprintable() or any(character.isspace() for character in entry.value):
            self.log.debug("left out of the %s list, a line cannot hold it: %r", kind, entry.value)
            return
        known = entries.get(entry.value)
        entries[entry.value] = entry if known is None else max(known, entry, key=Entry.precedence)

    def _write(self, name: str, data: bytes) -> None:
        target = os.path.join(self.folder, name)
        try:
            with open(target, "rb") as handle:
                if handle.read() == data:
                    return
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise AdapterError(self.name, f"cannot read {target}: {reason(exc)}") from None
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
        writer.writerow([
            entry.value, entry.impact or "", entry.role or "", entry.malware_family or "", entry.threat_type,
            entry.threat_id, entry.threat_label or "", published.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ])
    return text.getvalue().encode()


def _reading(sqlite_path: str) -> closing[sqlite3.Connection]:
    """A read-only connection that never creates the file, closed on leaving the ``with``."""
    return closing(sqlite3.connect(f"{Path(sqlite_path).absolute().as_uri()}?mode=ro", uri=True))


def _store_problem(sqlite_path: str, built: bool = False) -> str | None:
    """Why the SQLite store at ``sqlite_path`` cannot be the source of the lists, or None.

    At config time (``built`` False) a store need not exist or have its tables yet:
    ``[integration_sqlite]`` creates both when the run opens it, before this adapter reads.
    """
    hint = "the lists are built from the store of [integration_sqlite]: enable it, with path set to the same file"
    if not os.path.exists(sqlite_path):
        if built:
            return f"there is no SQLite store at {sqlite_path}; {hint}"
        folder = os.path.dirname(os.path.abspath(sqlite_path))
        return None if os.path.isdir(folder) else f"the folder {folder} does not exist; {hint}"
    try:
        with _reading(sqlite_path) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        return f"{sqlite_path} is not a SQLite database ({exc}); {hint}"
    if built and not {"threats", "indicators"} <= tables:
        return f"{sqlite_path} has no phishme-intel tables; {hint}"
    return None

