"""``[integration_sqlite]``: the embedded IOC store, a SQLite database users query directly.

Tables (times in epoch milliseconds; ``threat_type`` is ``malware`` or ``phish``)::

    threats(threat_type, threat_id, label, first_published, last_published, json)
    indicators(threat_type, threat_id, kind, value, impact, role, malware_family)
    deleted_threats(threat_type, threat_id, deleted_at)
    meta(key, value)                       -- schema_version

A delivery replaces the threat's row and all its indicator rows, and clears a tombstone;
a withdrawal deletes both and records a tombstone in ``deleted_threats``. Deliveries and
withdrawals accumulate in one transaction that :meth:`commit` commits. The database runs in
WAL mode with ``synchronous=FULL``: a commit survives ``kill -9`` and power loss, and a run
killed mid-transaction leaves the store as of the last commit. The sync's process gives the
store a page cache of ``CACHE_KIB``.

A store whose ``indicators`` table is empty when it is opened (the first backfill) is
bulk-loaded without its ``(kind, value)`` index, which is built once, when the adapter is
closed: keeping it up to date row by row cost a fifth of a backfill. Until then lookups by
value scan the table; a run that ends early leaves the index to the next one, which builds
it when it opens the store (or, if that one finds the table empty, when it closes it).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import AdapterError
from ..files import writable_file_problem
from ..models import Threat, ThreatRef
from ..options import Option, path
from .base import Adapter

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
#: The page cache, in KiB. Every delivery updates the indicator index at random places; with
#: SQLite's default 2 MiB most of those reads missed and a backfill wrote a third slower.
CACHE_KIB = 16 * 1024
#: The page size of a new store. A threat's JSON (about 10 KB) fits one 64 KiB page instead of
#: a chain of 4 KiB overflow pages: a backfill stored a quarter faster, in a file of the same size.
PAGE_SIZE = 64 * 1024
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS threats (
    threat_type TEXT NOT NULL, threat_id INTEGER NOT NULL, label TEXT,
    first_published INTEGER, last_published INTEGER, json TEXT NOT NULL,
    PRIMARY KEY (threat_type, threat_id)
);
CREATE TABLE IF NOT EXISTS indicators (
    threat_type TEXT NOT NULL, threat_id INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
    impact TEXT, role TEXT, malware_family TEXT,
    PRIMARY KEY (threat_type, threat_id, kind, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deleted_threats (
    threat_type TEXT NOT NULL, threat_id INTEGER NOT NULL, deleted_at INTEGER NOT NULL,
    PRIMARY KEY (threat_type, threat_id)
);
"""
INDEX = "CREATE INDEX IF NOT EXISTS indicators_by_value ON indicators (kind, value)"


class SqliteAdapter(Adapter):
    """Keeps every threat and its indicators in a SQLite file; withdrawal deletes and leaves a tombstone."""

    name = "sqlite"
    options = (Option("path", path, "phishme_intel.sqlite3"),)

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> list[str]:
        problem = writable_file_problem(settings["path"])
        return [f"path: {problem}"] if problem else []

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.path: str = settings["path"]
        self._db: sqlite3.Connection | None = None
        self._index_deferred = False

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise AdapterError(self.name, "used before open()")
        return self._db

    def open(self) -> None:
        try:
            self._db = sqlite3.connect(self.path)
            self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only a new, empty file takes it
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            self._db.executescript(SCHEMA)
            found = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if found is None:
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                self._db.commit()
            elif int(found[0]) > SCHEMA_VERSION:
                raise AdapterError(self.name, f"{self.path} has schema {found[0]}, newer than this release knows")
            self._index_deferred = self._db.execute("SELECT 1 FROM indicators LIMIT 1").fetchone() is None
            if self._index_deferred:
                self._db.execute("DROP INDEX IF EXISTS indicators_by_value")
            else:
                self._db.execute(INDEX)
            self._db.commit()
        except sqlite3.Error as exc:
            raise AdapterError(self.name, f"cannot open {self.path}: {exc}") from None

    def deliver(self, threats: Sequence[Threat]) -> None:
        """Replace each threat's rows. Only the indicator rows that changed are written: a
        re-published threat mostly keeps its indicators, and rewriting them all (two B-trees
        each) took most of an updates run."""
        threats = list({t.ref: t for t in threats}.values())  # a threat twice in one batch: the last one counts
        refs = [(t.kind, t.id) for t in threats]
        rows = [(t.kind, t.id, *indicator[:5]) for t in threats for indicator in t.indicators]  # the columns, in order
        try:
            self.db.executemany(
                "INSERT OR REPLACE INTO threats VALUES (?, ?, ?, ?, ?, ?)",
                [(t.kind, t.id, t.label, t.first_published, t.last_published, t.json) for t in threats],
            )
            self.db.executemany("DELETE FROM deleted_threats WHERE threat_type = ? AND threat_id = ?", refs)
            held = self._indicator_rows(refs)
            if held:
                wanted = set(rows)
                self.db.executemany(
                    "DELETE FROM indicators WHERE threat_type = ? AND threat_id = ? AND kind = ? AND value = ?",
                    [row[:4] for row in held - wanted],
                )
                rows = [row for row in rows if row not in held]
            self.db.executemany("INSERT INTO indicators VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            raise AdapterError(self.name, f"cannot write to {self.path}: {exc}") from None

    def _indicator_rows(self, refs: Sequence[tuple[str, int]]) -> set[tuple[Any, ...]]:
        """The indicator rows the store holds for these threats."""
        held: set[tuple[Any, ...]] = set()
        for kind in {kind for kind, _ in refs}:
            ids = [threat_id for each, threat_id in refs if each == kind]
            marks = ", ".join("?" * len(ids))
            held.update(self.db.execute(
                f"SELECT * FROM indicators WHERE threat_type = ? AND threat_id IN ({marks})", (kind, *ids)
            ))
        return held

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        rows = [(ref.kind, ref.id) for ref in refs]
        now = int(time.time() * 1000)
        try:
            self.db.executemany("DELETE FROM threats WHERE threat_type = ? AND threat_id = ?", rows)
            self.db.executemany("DELETE FROM indicators WHERE threat_type = ? AND threat_id = ?", rows)
            self.db.executemany(
                "INSERT OR REPLACE INTO deleted_threats VALUES (?, ?, ?)", [(*row, now) for row in rows]
            )
        except sqlite3.Error as exc:
            raise AdapterError(self.name, f"cannot write to {self.path}: {exc}") from None

    def commit(self) -> None:
        try:
            self.db.commit()
        except sqlite3.Error as exc:
            raise AdapterError(self.name, f"cannot commit to {self.path}: {exc}") from None

    def close(self) -> None:
        """Roll back what was not committed; build the index the bulk load went without."""
        if self._db is not None:
            self._db.rollback()
            try:
                if self._index_deferred:
                    self._db.execute(INDEX)
                    self._db.commit()
            except sqlite3.Error as exc:  # close must not raise: the next run builds it
                log.warning("sqlite: cannot build the index of %s: %s", self.path, exc)
            finally:
                self._db.close()
                self._db = None
