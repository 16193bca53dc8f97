"""``[integration_sqlite]``: the embedded IOC store, a SQLite database users query directly.

Tables (times in epoch milliseconds; ``threat_type`` is ``malware`` or ``phish``)::

    threats(threat_type, threat_id, label, first_published, last_published, json)
    indicators(threat_type, threat_id, kind, value, impact, role, malware_family)
    deleted_threats(threat_type, threat_id, deleted_at)
    indicator_history(threat_type, threat_id, kind, value, first_seen, last_seen, withdrawn_at)
    meta(key, value)                       -- schema_version

A delivery replaces the threat's row and all its indicator rows, and clears a tombstone;
a withdrawal deletes both and records a tombstone in ``deleted_threats``. The history keeps
a row per indicator and threat for good (see :mod:`.store`); SQLite writes it from the
indicator rows delivered, when the transaction is committed (see :meth:`SqliteAdapter._record`),
so its first and last seen times are the commit's. Deliveries and withdrawals
accumulate in one transaction that :meth:`commit` commits. The database runs in WAL mode
with ``synchronous=FULL``: a commit survives ``kill -9`` and power loss, and a run killed
mid-transaction leaves the store as of the last commit. The sync's process gives the store
a page cache of ``CACHE_KIB``.

:meth:`open` creates the tables, or migrates a store of an older schema in one transaction
(schema 1 to 2: the history, filled from the indicators listed then with the migration time
as first and last seen; the value index on ``(value, kind)`` so a lookup by value alone uses it).

A store whose ``indicators`` table is empty when it is opened (the first backfill) is
bulk-loaded without its ``(value, kind)`` indexes (of ``indicators`` and
``indicator_history``), which are built once, when the adapter is closed: keeping them up to
date row by row cost a fifth of a backfill. Until then lookups by value scan the tables; a
run that ends early leaves the indexes to the next one, which builds them when it opens the
store (or, if that one finds the table empty, when it closes it).

A delivery or withdrawal writes its rows a few hundred per statement (``INSERT ... VALUES
(...), (...)``; the threat ids it deletes as one JSON array read by ``json_each``), not one
statement step per row: the sqlite3 module lets go of the interpreter's lock for each step,
and the adapter works on a thread of its own (:mod:`phishme_intel.sync.fanout`), so a few long
steps run beside the sync's decoding, where a short step per row waited each time for the
lock to come back (and the rows cost a third less CPU).
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from .. import memory
from ..errors import AdapterError
from ..files import writable_file_problem
from ..models import Threat, ThreatRef
from ..models.limits import LATEST_TIME_MS
from ..options import Option, path
from .base import Adapter
from .store import FETCH_ROWS, Listing, Sighting, StoreReader, matching, value_runs

log = logging.getLogger(__name__)
SCHEMA_VERSION = 2
#: The page cache, in KiB. Every delivery updates the indicator index at random places; with
#: SQLite's default 2 MiB most of those reads missed and a backfill wrote a third slower. 8 MiB
#: stores a W1 backfill as fast as 16 MiB did (7.5-8.5 s either way) with 8 MiB less peak RSS.
CACHE_KIB = 8 * 1024
#: The page size of a new store. A threat's JSON (about 10 KB) fits one 64 KiB page instead of
#: a chain of 4 KiB overflow pages: a backfill stored a quarter faster, in a file of the same size.
PAGE_SIZE = 64 * 1024
_HISTORY_TABLE = """
CREATE TABLE indicator_history (
    threat_type TEXT NOT NULL, threat_id INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
    first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, withdrawn_at INTEGER,
    PRIMARY KEY (threat_type, threat_id, kind, value)
) WITHOUT ROWID;
"""
SCHEMA = f"""
BEGIN;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE threats (
    threat_type TEXT NOT NULL, threat_id INTEGER NOT NULL, label TEXT,
    first_published INTEGER, last_published INTEGER, json TEXT NOT NULL,
    PRIMARY KEY (threat_type, threat_id)
);
CREATE TABLE indicators (
    threat_type TEXT NOT NULL, threat_id INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
    impact TEXT, role TEXT, malware_family TEXT,
    PRIMARY KEY (threat_type, threat_id, kind, value)
) WITHOUT ROWID;
CREATE TABLE deleted_threats (
    threat_type TEXT NOT NULL, threat_id INTEGER NOT NULL, deleted_at INTEGER NOT NULL,
    PRIMARY KEY (threat_type, threat_id)
);
{_HISTORY_TABLE}
INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');
COMMIT;
"""
#: The indexes on value (see the module's docstring for when they are built).
INDEXES = """
CREATE INDEX IF NOT EXISTS indicators_by_value ON indicators (value, kind);
CREATE INDEX IF NOT EXISTS indicator_history_by_value ON indicator_history (value, kind);
"""
#: The script that brings a store of schema ``n - 1`` to schema ``n``, by ``n``.
MIGRATIONS = {
    2: f"""
BEGIN;
{_HISTORY_TABLE}
INSERT INTO indicator_history
    SELECT threat_type, threat_id, kind, value, {{now}}, {{now}}, NULL FROM indicators;
DROP INDEX IF EXISTS indicators_by_value;
INSERT OR REPLACE INTO meta VALUES ('schema_version', '2');
COMMIT;
""",
}
_LISTING = """
SELECT i.kind, i.value, i.impact, i.role, i.malware_family, t.threat_type, t.threat_id, t.label,
       t.first_published, t.last_published{detail}
FROM indicators AS i JOIN threats AS t ON t.threat_type = i.threat_type AND t.threat_id = i.threat_id
"""
#: The queries a lookup runs (``{values}``: one ``?`` per value); both read the ``(value, kind)`` indexes.
FIND = _LISTING.format(detail=", json_extract(t.json, '$.threatDetailURL')") + " WHERE i.value IN ({values})"
#: What :meth:`SqliteReader.listed` reads (``{kinds}``: one ``?`` per kind; ``{impacts}``: empty, or
#: ``AND i.impact IN (...)``; ``{order}``: ``i.value``, or :data:`URL_WITHOUT_SCHEME` first).
#: CROSS JOIN keeps SQLite to this order: each threat once, then its indicators by their key. The
#: other order looked up a threat (a 64 KiB page) for every indicator it read: five times the CPU
#: and ten times the wall time of a W1 store's rebuild.
_LISTED_FROM = ("FROM threats AS t CROSS JOIN indicators AS i "
                "ON i.threat_type = t.threat_type AND i.threat_id = t.threat_id")
LISTED = f"""
SELECT i.kind, i.value, i.impact, i.role, i.malware_family, t.threat_type, t.threat_id, t.label,
       t.first_published, t.last_published
{_LISTED_FROM}
WHERE i.kind IN ({{kinds}}){{impacts}} AND t.last_published >= ?
ORDER BY i.kind, {{order}}
"""
#: What :meth:`SqliteReader.listed_values` reads: the kinds and values of :data:`LISTED` whose threat's
#: last published time is an integer between the two ``?`` (``since`` and the last time), a value once
#: per threat listing it (:func:`.store.value_runs` skips the repeats, next to each other). It needs
#: no column of the threats but their key: the indicators are read in one pass, those of the kinds and
#: impacts wanted (tested first: SQLite tests the terms in this order) looked up among the keys of the
#: threats wanted (``+`` keeps SQLite from seeking the indicators of each threat instead: a third of
#: the CPU of a W1 store's listing), and sorted without DISTINCT (its B-tree cost more than the sort).
LISTED_VALUES = """
SELECT i.kind, i.value FROM indicators AS i
WHERE i.kind IN ({kinds}){impacts}
    AND (+i.threat_type, +i.threat_id) IN (SELECT threat_type, threat_id FROM threats
                                           WHERE last_published BETWEEN ? AND ? AND typeof(last_published) = 'integer')
ORDER BY i.kind, {order}
"""
#: A URL's value without its scheme, as :func:`.store.without_scheme` gives it (other kinds: the value).
URL_WITHOUT_SCHEME = ("CASE WHEN i.kind = 'url' AND instr(i.value, '://') > 0 "
                      "THEN substr(i.value, instr(i.value, '://') + 3) ELSE i.value END")
HISTORY = """
SELECT kind, value, threat_type, threat_id, first_seen, last_seen, withdrawn_at
FROM indicator_history WHERE value IN ({values})
"""


class SqliteAdapter(Adapter):
    """Keeps every threat and its indicators in a SQLite file; withdrawal deletes and leaves a tombstone."""

    name = "sqlite"
    options = (Option("path", path, "phishme_intel.sqlite3"),)
    keeps_store = True

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> list[str]:
        problem = writable_file_problem(settings["path"])
        return [f"path: {problem}"] if problem else []

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.path: str = settings["path"]
        self._db: sqlite3.Connection | None = None
        self._index_deferred = False
        #: The threats delivered since the history was last written (see :meth:`_record`).
        self._unrecorded: set[ThreatRef] = set()

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
            self._prepare(self._db)
            self._index_deferred = self._db.execute("SELECT 1 FROM indicators LIMIT 1").fetchone() is None
            if self._index_deferred:
                self._db.executescript("DROP INDEX IF EXISTS indicators_by_value; "
                                       "DROP INDEX IF EXISTS indicator_history_by_value;")
            else:
                self._db.executescript(INDEXES)
        except sqlite3.Error as exc:
            raise AdapterError(self.name, f"cannot open {self.path}: {exc}") from None

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Create the tables, or migrate them one schema version at a time, each in one transaction."""
        version = _schema_version(db)
        if version is None:
            db.executescript(SCHEMA)
        elif version > SCHEMA_VERSION:
            raise AdapterError(self.name, f"{self.path} has schema {version}, newer than this release knows")
        for target in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
            self.log.warning("migrating %s from schema %d to %d", self.path, target, target + 1)
            db.executescript(MIGRATIONS[target + 1].format(now=int(time.time() * 1000)))

    def deliver(self, threats: Sequence[Threat]) -> None:
        """Replace each threat's rows. Only the indicator rows that changed are written: a
        re-published threat mostly keeps its indicators, and rewriting them all (two B-trees
        each) took most of an updates run; a row whose impact, role or family changed is
        updated in place, not deleted and inserted. The history of the rows is written later,
        by :meth:`_record`."""
        latest = {t.ref: t for t in threats}  # a threat twice in one batch: the last one counts
        refs, threats = list(latest), list(latest.values())
        # The columns, in order; a threat's first two shared by its rows (a fifth less CPU than a tuple built per row).
        rows = [ref + indicator[:5] for ref, t in latest.items() for indicator in t.indicators]
        try:
            if not self._unrecorded.isdisjoint(refs):
                self._record()
            self._unrecorded.update(refs)
            ids = _ids(refs)
            held = self._indicator_rows(self._stored(ids))
            _bulk(self.db, "INSERT OR REPLACE INTO threats SELECT * FROM {rows}",
                  [(t.kind, t.id, t.label, t.first_published, t.last_published, t.json) for t in threats])
            for kind, among in ids.items():
                self.db.execute(f"DELETE FROM deleted_threats WHERE threat_type = ? AND threat_id IN {IDS}",
                                (kind, among))
            if held:
                self._drop(held, rows)
                rows = [row for row in rows if row not in held]
            _bulk(self.db, "INSERT INTO indicators SELECT * FROM {rows} ON CONFLICT DO UPDATE SET "
                           "impact = excluded.impact, role = excluded.role, malware_family = excluded.malware_family",
                  rows)
        except sqlite3.Error as exc:
            raise AdapterError(self.name, f"cannot write to {self.path}: {exc}") from None

    def _drop(self, held: set[tuple[Any, ...]], rows: Sequence[tuple[Any, ...]]) -> None:
        """Delete the ``held`` indicator rows whose (kind, value) the threat's new ``rows`` no
        longer have, and mark them withdrawn in the history (see :meth:`_record`)."""
        if stale := held.difference(rows):  # rows dropped, or whose impact, role or family changed
            keys = {row[:4] for row in rows}
            dropped = [row[:4] for row in stale if row[:4] not in keys]
            self.db.executemany(
                "DELETE FROM indicators WHERE threat_type = ? AND threat_id = ? AND kind = ? AND value = ?", dropped
            )
            now = int(time.time() * 1000)
            self.db.executemany(
                "UPDATE indicator_history SET last_seen = ?, withdrawn_at = ? WHERE threat_type = ? "
                "AND threat_id = ? AND kind = ? AND value = ?", [(now, now, *row) for row in dropped]
            )

    def _record(self) -> None:
        """Write the history of the threats delivered since the last call: each indicator row
        they hold now is seen now (a new row first seen now, a row withdrawn listed again).

        It runs in SQLite, over the rows the deliveries wrote, before each commit (in the same
        transaction), and before a threat it has not recorded yet is delivered again or withdrawn
        (so the rows a new version drops are in the history to be marked). A history row's
        first and last seen are thus the time of the commit (or of that later delivery), not
        of the delivery. Binding each row a second time from Python cost a backfill a second.
        """
        now = int(time.time() * 1000)
        for kind, among in _ids(self._unrecorded).items():
            self.db.execute(
                "INSERT INTO indicator_history SELECT threat_type, threat_id, kind, value, ?, ?, NULL "
                f"FROM indicators WHERE threat_type = ? AND threat_id IN {IDS} "
                "ON CONFLICT DO UPDATE SET last_seen = excluded.last_seen, withdrawn_at = NULL", (now, now, kind, among)
            )
        self._unrecorded.clear()

    def _stored(self, ids: Mapping[str, bytes]) -> dict[str, bytes]:
        """Those of ``ids`` (as :func:`_ids` gives them) the ``threats`` table holds, alike.

        Read from its small key index: a backfill holds none of most threats it delivers, and
        looking for their indicator rows cost it a quarter of a second.
        """
        found = {}
        for kind, among in ids.items():
            (stored,) = self.db.execute(f"SELECT json_group_array(threat_id) FROM threats WHERE threat_type = ? "
                                        f"AND threat_id IN {IDS}", (kind, among)).fetchone()
            if stored != "[]":
                found[kind] = stored
        return found

    def _indicator_rows(self, ids: Mapping[str, bytes]) -> set[tuple[Any, ...]]:
        """The indicator rows the store holds for these threats (read in one step, as one JSON array)."""
        held: set[tuple[Any, ...]] = set()
        for kind, among in ids.items():
            (found,) = self.db.execute(
                "SELECT json_group_array(json_array(threat_type, threat_id, kind, value, impact, role, "
                f"malware_family)) FROM indicators WHERE threat_type = ? AND threat_id IN {IDS}", (kind, among)
            ).fetchone()
            held.update(map(tuple, orjson.loads(found)))
        return held

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        now = int(time.time() * 1000)
        try:
            if not self._unrecorded.isdisjoint(refs):
                self._record()
            for kind, among in _ids(refs).items():
                self.db.execute(f"DELETE FROM threats WHERE threat_type = ? AND threat_id IN {IDS}", (kind, among))
                self.db.execute(f"DELETE FROM indicators WHERE threat_type = ? AND threat_id IN {IDS}", (kind, among))
                self.db.execute("INSERT OR REPLACE INTO deleted_threats SELECT ?, value, ? FROM json_each(?)",
                                (kind, now, among))
                self.db.execute(f"UPDATE indicator_history SET withdrawn_at = ? WHERE threat_type = ? "
                                f"AND threat_id IN {IDS} AND withdrawn_at IS NULL", (now, kind, among))
        except sqlite3.Error as exc:
            raise AdapterError(self.name, f"cannot write to {self.path}: {exc}") from None

    def commit(self) -> None:
        try:
            self._record()
            self.db.commit()
        except sqlite3.Error as exc:
            raise AdapterError(self.name, f"cannot commit to {self.path}: {exc}") from None

    def close(self) -> None:
        """Roll back what was not committed; build the indexes the bulk load went without."""
        if self._db is not None:
            self._db.rollback()
            self._unrecorded.clear()
            try:
                if self._index_deferred:
                    self._build_indexes()
            except sqlite3.Error as exc:  # close must not raise: the next run builds them
                log.warning("sqlite: cannot build the indexes of %s: %s", self.path, exc)
            finally:
                self._db.close()
                self._db = None

    def _build_indexes(self) -> None:
        """Build the indexes the bulk load went without, in memory the run no longer holds.

        SQLite sorts the rows of each in a buffer of its own, 16 MiB whatever the cache size;
        on top of the run's page cache and what its heaps still held free, that raised a W1
        backfill's peak RSS by 5 MiB (every adapter on: 93 -> 98 MiB). The cache's pages
        and the heaps' free memory are given back first.
        """
        self.db.execute("PRAGMA shrink_memory")
        memory.give_back()
        self.db.executescript(INDEXES)

    def reader(self) -> StoreReader:
        return SqliteReader(self.path)


class SqliteReader(StoreReader):
    """Reads the store on a read-only connection of its own, which never creates the file.

    The connection's main database is an empty one in memory, the store attached to it as
    ``store``: SQLite sizes a sort's memory by the main database's page size (250 pages before
    it spills to a temporary file), and 250 of the store's 64 KiB pages held a W1 store's
    whole listing (14 MiB) in memory; with 4 KiB pages a sort holds about 2 MiB.
    """

    name = "sqlite"

    def __init__(self, sqlite_path: str) -> None:
        self.path = sqlite_path
        self.where = f"SQLite store {sqlite_path}"
        if not os.path.exists(sqlite_path):
            raise AdapterError(self.name, f"there is no {self.where}: a sync run with [integration_sqlite] creates it")
        try:
            self._db = sqlite3.connect(":memory:", uri=True)
            self._db.execute("ATTACH DATABASE ? AS store", (f"{Path(sqlite_path).absolute().as_uri()}?mode=ro",))
            version = _schema_version(self._db, "store")
        except sqlite3.Error as exc:
            raise AdapterError(self.name, f"cannot read the {self.where}: {exc}") from None
        if version != SCHEMA_VERSION:
            self.close()
            raise AdapterError(self.name, f"the {self.where} has schema {version}, not {SCHEMA_VERSION}: "
                                          "the next sync run with this release migrates it")

    def _query(self, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        try:
            yield from self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise AdapterError(self.name, f"cannot read the {self.where}: {exc}") from None

    def listed(self, kinds: Sequence[str], since: int, impacts: Collection[str] | None = None,
               url_without_scheme: bool = False) -> Iterator[Listing]:
        chunks = self._listing(LISTED, (since,), kinds, impacts, url_without_scheme)
        return itertools.starmap(Listing, itertools.chain.from_iterable(chunks))

    def listed_values(self, kinds: Sequence[str], since: int, impacts: Collection[str] | None = None,
                      url_without_scheme: bool = False) -> Iterator[tuple[str, list[str]]]:
        return value_runs(self._listing(LISTED_VALUES, (since, LATEST_TIME_MS), kinds, impacts, url_without_scheme))

    def _listing(self, sql: str, times: tuple[int, ...], kinds: Sequence[str], impacts: Collection[str] | None,
                 url_without_scheme: bool) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of :data:`LISTED` or :data:`LISTED_VALUES`, fetched :data:`.store.FETCH_ROWS` at a time."""
        among = () if impacts is None else tuple(impacts)
        query = sql.format(kinds=", ".join("?" * len(kinds)),
                           impacts="" if impacts is None else f" AND i.impact IN ({', '.join('?' * len(among))})",
                           order=f"{URL_WITHOUT_SCHEME}, i.value" if url_without_scheme else "i.value")
        try:
            cursor = self._db.execute(query, (*kinds, *among, *times))
            while rows := cursor.fetchmany(FETCH_ROWS):
                yield rows
        except sqlite3.Error as exc:
            raise AdapterError(self.name, f"cannot read the {self.where}: {exc}") from None

    def find(self, wanted: Collection[tuple[str, str]]) -> list[Listing]:
        return matching(wanted, lambda values: self._query_in(FIND, values), Listing)

    def history(self, wanted: Collection[tuple[str, str]]) -> list[Sighting]:
        return matching(wanted, lambda values: self._query_in(HISTORY, values), Sighting)

    def _query_in(self, sql: str, values: list[str]) -> list[tuple[Any, ...]]:
        """``sql`` with its ``{values}`` a placeholder for each of ``values``, run with them."""
        return self._query(sql.format(values=", ".join("?" * len(values))), values)

    def close(self) -> None:
        self._db.close()


#: How many rows one statement of :func:`_bulk` writes (at 7 columns, 3,500 of SQLite's 32,766 parameters).
ROWS = 500
#: The threat ids handed over as one JSON array (see :func:`_ids`), as a subquery.
IDS = "(SELECT value FROM json_each(?))"


def _ids(refs: Iterable[tuple[str, int]]) -> dict[str, bytes]:
    """The ids of ``refs`` by threat type, each type's as a JSON array for :data:`IDS`."""
    by_kind: defaultdict[str, list[int]] = defaultdict(list)
    for kind, threat_id in refs:
        by_kind[kind].append(threat_id)
    return {kind: orjson.dumps(ids) for kind, ids in by_kind.items()}


def _bulk(db: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Run ``sql`` over ``rows``, :data:`ROWS` at a time: its ``{rows}`` is a table of them.

    Every statement has :data:`ROWS` rows, the last one filled up with rows of NULLs that
    ``{rows}`` leaves out (a row's first column is never NULL), so SQLite compiles one
    statement per table: it keeps each compiled (a few hundred KB at 500 rows), and one of
    each size up to 500 took 30 MiB.
    """
    if not rows:
        return
    width = len(rows[0])
    mark = f"({', '.join('?' * width)})"
    table = f"(VALUES {', '.join([mark] * ROWS)}) WHERE column1 IS NOT NULL"
    statement = sql.format(rows=table)
    for start in range(0, len(rows), ROWS):
        some = rows[start:start + ROWS]
        values = list(itertools.chain.from_iterable(some))
        values += [None] * (width * (ROWS - len(some)))
        db.execute(statement, values)


def _schema_version(db: sqlite3.Connection, schema: str = "main") -> int | None:
    """The schema version of the store ``db`` holds as ``schema``; None when it has no tables yet.

    Schema 1 wrote its version after creating the tables: a ``meta`` table without one is schema 1.
    """
    if db.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE name = 'meta'").fetchone() is None:
        return None
    found = db.execute(f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'").fetchone()
    return int(found[0]) if found else 1
