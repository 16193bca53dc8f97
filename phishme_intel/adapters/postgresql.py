"""``[integration_postgresql]``: the IOC store on a PostgreSQL server, for a team to query.

The tables are those of the SQLite store (:mod:`.sqlite`), with PostgreSQL's types::

    threats(threat_type text, threat_id bigint, label text,
            first_published timestamptz, last_published timestamptz, json jsonb)
    indicators(threat_type, threat_id, kind, value, impact, role, malware_family)
    deleted_threats(threat_type, threat_id, deleted_at timestamptz)
    indicator_history(threat_type, threat_id, kind, value,
                      first_seen timestamptz, last_seen timestamptz, withdrawn_at timestamptz)
    meta(key, value)                       -- schema_version

in the schema the connection's ``search_path`` names first (``public`` unless the role or
the connection string says otherwise). :meth:`open` creates them, or migrates older ones,
under an advisory lock. A delivery copies its threats and indicators into temporary tables
with ``COPY`` and merges them with one statement per table: a backfill of millions of
indicators loads in bulk, and replaying a batch changes nothing. After a commit that loaded
many rows the tables are analysed, so lookups read the indexes at once. A withdrawal deletes the
threat and its indicators and records a tombstone; history rows stay, with the withdrawal
time. Everything since the last commit is one transaction, committed by :meth:`commit`
before the sync stores its position.

PostgreSQL cannot store the NUL character: in text and JSON it is stored as U+FFFD.

The connection string (``conninfo``) is libpq's, passed through as it is: host, port,
dbname, user and the TLS settings (``sslmode=verify-full``, ``sslrootcert``, ``sslcert``,
``sslkey``). The password is kept out of it: ``pass``, a secret, which like every secret may
also come from ``pass_file``, ``PHISHME_INTEL_POSTGRESQL_PASS`` or a systemd credential
(:mod:`phishme_intel.config.sources`); without one, libpq's own means apply (``~/.pgpass``,
``PGPASSWORD``, a client certificate).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..errors import AdapterError
from ..models import Threat, ThreatRef
from ..models.limits import LATEST_TIME_MS
from ..options import REQUIRED, Option, secret, text
from .base import Adapter
from .store import FETCH_ROWS, Listing, Sighting, StoreReader, matching, value_runs

#: The same number as the SQLite store's schema with the same tables.
SCHEMA_VERSION = 2
#: After a commit that brought at least this many indicator rows, and as many as the planner's
#: statistics were taken on, the tables are analysed at once (a backfill: 10,000, 20,000,
#: 40,000... rows), so a lookup right after a backfill reads the indexes; autovacuum takes over.
ANALYZE_AFTER = 10_000
_LOCK = 0x70686973686D65  # the advisory lock that serialises creating and migrating the tables
_UTC = dt.timezone.utc
SCHEMA = """
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE threats (
    threat_type text NOT NULL, threat_id bigint NOT NULL, label text,
    first_published timestamptz, last_published timestamptz, json jsonb NOT NULL,
    PRIMARY KEY (threat_type, threat_id)
);
CREATE TABLE indicators (
    threat_type text NOT NULL, threat_id bigint NOT NULL, kind text NOT NULL, value text NOT NULL,
    impact text, role text, malware_family text,
    PRIMARY KEY (threat_type, threat_id, kind, value)
);
CREATE INDEX indicators_by_value ON indicators (value, kind);
CREATE TABLE deleted_threats (
    threat_type text NOT NULL, threat_id bigint NOT NULL, deleted_at timestamptz NOT NULL,
    PRIMARY KEY (threat_type, threat_id)
);
CREATE TABLE indicator_history (
    threat_type text NOT NULL, threat_id bigint NOT NULL, kind text NOT NULL, value text NOT NULL,
    first_seen timestamptz NOT NULL, last_seen timestamptz NOT NULL, withdrawn_at timestamptz,
    PRIMARY KEY (threat_type, threat_id, kind, value)
);
CREATE INDEX indicator_history_by_value ON indicator_history (value, kind);
"""
_STAGING = """
CREATE TEMPORARY TABLE incoming_threats (LIKE threats) ON COMMIT DELETE ROWS;
CREATE TEMPORARY TABLE incoming_indicators (LIKE indicators) ON COMMIT DELETE ROWS;
"""
_MERGE = (
    """INSERT INTO threats SELECT * FROM incoming_threats ON CONFLICT (threat_type, threat_id) DO UPDATE SET
       label = excluded.label, first_published = excluded.first_published,
       last_published = excluded.last_published, json = excluded.json""",
    """DELETE FROM indicators AS i USING incoming_threats AS n
       WHERE i.threat_type = n.threat_type AND i.threat_id = n.threat_id""",
    """DELETE FROM deleted_threats AS d USING incoming_threats AS n
       WHERE d.threat_type = n.threat_type AND d.threat_id = n.threat_id""",
    "INSERT INTO indicators SELECT * FROM incoming_indicators",
    """INSERT INTO indicator_history (threat_type, threat_id, kind, value, first_seen, last_seen)
       SELECT threat_type, threat_id, kind, value, %(now)s, %(now)s FROM incoming_indicators
       ON CONFLICT (threat_type, threat_id, kind, value) DO UPDATE SET last_seen = excluded.last_seen,
       withdrawn_at = NULL""",
    """UPDATE indicator_history AS h SET withdrawn_at = %(now)s FROM incoming_threats AS n
       WHERE h.threat_type = n.threat_type AND h.threat_id = n.threat_id AND h.withdrawn_at IS NULL
       AND h.last_seen < %(now)s""",
)
_WITHDRAW = (
    "DELETE FROM threats WHERE threat_type = %s AND threat_id = %s",
    "DELETE FROM indicators WHERE threat_type = %s AND threat_id = %s",
    """INSERT INTO deleted_threats VALUES (%s, %s, %s)
       ON CONFLICT (threat_type, threat_id) DO UPDATE SET deleted_at = excluded.deleted_at""",
    "UPDATE indicator_history SET withdrawn_at = %s WHERE threat_type = %s AND threat_id = %s AND withdrawn_at IS NULL",
)
_MS = "(extract(epoch FROM {}) * 1000)::bigint"
_LISTING = f"""
SELECT i.kind, i.value, i.impact, i.role, i.malware_family, t.threat_type, t.threat_id, t.label,
       {_MS.format("t.first_published")}, {_MS.format("t.last_published")}{{detail}}
FROM indicators AS i JOIN threats AS t ON t.threat_type = i.threat_type AND t.threat_id = i.threat_id
"""
#: The queries a lookup runs (a list of values as the parameter); both read the ``(value, kind)`` indexes.
#: A threat is fetched per indicator found, by its key (``LIMIT 1`` keeps the planner from a hash
#: join that would read the whole ``threats`` table, JSON and all, for a few hundred rows).
FIND = f"""
SELECT i.kind, i.value, i.impact, i.role, i.malware_family, t.threat_type, t.threat_id, t.label,
       {_MS.format("t.first_published")}, {_MS.format("t.last_published")}, t.json->>'threatDetailURL'
FROM indicators AS i CROSS JOIN LATERAL (
    SELECT * FROM threats WHERE threat_type = i.threat_type AND threat_id = i.threat_id LIMIT 1
) AS t
WHERE i.value = ANY(%s)
"""
#: A URL's value without its scheme, as :func:`.store.without_scheme` gives it (other kinds: the value).
URL_WITHOUT_SCHEME = ("CASE WHEN i.kind = 'url' AND strpos(i.value, '://') > 0 "
                      "THEN substr(i.value, strpos(i.value, '://') + 3) ELSE i.value END")
HISTORY = f"""
SELECT kind, value, threat_type, threat_id, {_MS.format("first_seen")}, {_MS.format("last_seen")},
       {_MS.format("withdrawn_at")}
FROM indicator_history WHERE value = ANY(%s)
"""


def conninfo(raw: str) -> str:
    """A libpq connection string (``key=value ...`` or a ``postgresql://`` URI) without a password in it."""
    value = text(raw)
    try:
        parts = conninfo_to_dict(value)
    except psycopg.ProgrammingError:
        raise ValueError("is not a libpq connection string such as 'host=db.example.org dbname=phishme'") from None
    if "password" in parts:
        raise ValueError("must not hold the password: set pass (or pass_file, or PHISHME_INTEL_POSTGRESQL_PASS)")
    return value


class PostgresqlAdapter(Adapter):
    """Keeps every threat and its indicators in PostgreSQL; withdrawal deletes and leaves a tombstone."""

    name = "postgresql"
    options = (
        Option("conninfo", conninfo, REQUIRED),
        Option("pass", secret, None),
    )
    keeps_store = True

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.conninfo: str = settings["conninfo"]
        parts = conninfo_to_dict(self.conninfo)
        self.where = f"PostgreSQL database {parts.get('dbname', '(default)')} on {parts.get('host', 'localhost')}"
        self._password: str | None = settings["pass"]
        self._db: psycopg.Connection | None = None
        self._analyzed = 0  # indicator rows the planner's statistics were last taken on
        self._loaded = 0  # indicator rows written since

    @property
    def db(self) -> psycopg.Connection:
        if self._db is None:
            raise AdapterError(self.name, "used before open()")
        return self._db

    def connect(self, autocommit: bool = False) -> psycopg.Connection:
        """A new connection with the configured password; raises AdapterError naming why not."""
        extra: dict[str, Any] = {"application_name": "phishme-intel"}
        if "connect_timeout" not in conninfo_to_dict(self.conninfo):
            extra["connect_timeout"] = 10
        if self._password:
            extra["password"] = self._password
        try:
            return psycopg.connect(self.conninfo, autocommit=autocommit, **extra)
        except psycopg.Error as exc:
            raise self.failure("cannot connect to", exc) from None

    def failure(self, doing: str, exc: psycopg.Error) -> AdapterError:
        """An AdapterError for ``exc``, met while ``doing`` the store, with the password masked."""
        message = str(exc).strip()
        if self._password:
            message = message.replace(self._password, "***")
        return AdapterError(self.name, f"{doing} the {self.where}: {message}")

    def open(self) -> None:
        self._db = self.connect()
        try:
            self.db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            version = self._schema_version()
            if version is None:
                self.db.execute(SCHEMA)
                self.db.execute("INSERT INTO meta VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),))
            elif version > SCHEMA_VERSION:
                raise AdapterError(self.name, f"the {self.where} has schema {version}, newer than this release knows")
            self.db.execute(_STAGING)
            found = self.db.execute("SELECT reltuples FROM pg_class WHERE oid = 'indicators'::regclass").fetchone()
            self._analyzed = max(int(found[0]), 0) if found else 0
            self.db.commit()
        except psycopg.Error as exc:
            raise self.failure("cannot create the tables in", exc) from None

    def _schema_version(self) -> int | None:
        """The store's schema version; None when it has no tables yet."""
        found = self.db.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
        if not (found and found[0]):
            return None
        version = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(version[0]) if version else None

    def deliver(self, threats: Sequence[Threat]) -> None:
        threats = list({t.ref: t for t in threats}.values())  # a threat twice in one batch: the last one counts
        now = dt.datetime.now(_UTC)
        try:
            with self.db.cursor() as cursor:
                cursor.execute("TRUNCATE incoming_threats, incoming_indicators")
                with cursor.copy("COPY incoming_threats FROM STDIN") as copy:
                    for t in threats:
                        copy.write_row((t.kind, t.id, _text(t.label), _instant(t.first_published),
                                        _instant(t.last_published), _json(t)))
                with cursor.copy("COPY incoming_indicators FROM STDIN") as copy:
                    for t in threats:
                        self._loaded += len(t.indicators)
                        for i in t.indicators:
                            copy.write_row((t.kind, t.id, i.kind, _text(i.value), _text(i.impact), _text(i.role),
                                            _text(i.malware_family)))
                cursor.execute("ANALYZE incoming_threats, incoming_indicators")  # else the merge may scan whole tables
                for statement in _MERGE:
                    cursor.execute(statement, {"now": now} if "%(now)s" in statement else None)
        except psycopg.Error as exc:
            raise self.failure("cannot write to", exc) from None

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        rows = [(ref.kind, ref.id) for ref in refs]
        now = dt.datetime.now(_UTC)
        delete_threats, delete_indicators, tombstone, history = _WITHDRAW
        try:
            with self.db.cursor() as cursor:
                cursor.executemany(delete_threats, rows)
                cursor.executemany(delete_indicators, rows)
                cursor.executemany(tombstone, [(*row, now) for row in rows])
                cursor.executemany(history, [(now, *row) for row in rows])
        except psycopg.Error as exc:
            raise self.failure("cannot write to", exc) from None

    def commit(self) -> None:
        try:
            self.db.commit()
            if self._loaded >= max(ANALYZE_AFTER, self._analyzed):
                self.db.execute("ANALYZE threats, indicators, indicator_history")
                self.db.commit()
                self._analyzed, self._loaded = self._analyzed + self._loaded, 0
        except psycopg.Error as exc:
            raise self.failure("cannot commit to", exc) from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()  # rolls back whatever was not committed
            self._db = None

    def reader(self) -> StoreReader:
        return PostgresqlReader(self)


class PostgresqlReader(StoreReader):
    """Reads the store on a connection of its own, in autocommit mode: each query sees the last commit."""

    def __init__(self, adapter: PostgresqlAdapter) -> None:
        self.name = adapter.name
        self.where = adapter.where
        self._adapter = adapter
        self._db = adapter.connect(autocommit=True)
        self._cursors = 0
        found = self._query("SELECT to_regclass('indicator_history') IS NOT NULL", ())
        if not (found and found[0][0]):
            self.close()
            raise AdapterError(self.name, f"the {self.where} holds no phishme-intel store of this release yet: "
                                          "a sync run with [integration_postgresql] enabled creates it")

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise self._adapter.failure("cannot read", exc) from None

    def listed(self, kinds: Sequence[str], since: int, impacts: Collection[str] | None = None,
               url_without_scheme: bool = False) -> Iterator[Listing]:
        query = _LISTING.format(detail="") + " WHERE t.last_published >= %s AND i.kind = ANY(%s)"
        chunks = self._listing(query, (_instant(since),), kinds, impacts, url_without_scheme)
        return itertools.starmap(Listing, itertools.chain.from_iterable(chunks))

    def listed_values(self, kinds: Sequence[str], since: int, impacts: Collection[str] | None = None,
                      url_without_scheme: bool = False) -> Iterator[tuple[str, list[str]]]:
        query = ("SELECT kind, value FROM (SELECT DISTINCT i.kind, i.value FROM indicators AS i JOIN threats AS t "
                 "ON t.threat_type = i.threat_type AND t.threat_id = i.threat_id "
                 "WHERE t.last_published BETWEEN %s AND %s AND i.kind = ANY(%s)")
        times = (_instant(since), _instant(LATEST_TIME_MS))
        return value_runs(self._listing(query, times, kinds, impacts, url_without_scheme, inner=True))

    def _listing(self, query: str, times: tuple[dt.datetime, ...], kinds: Sequence[str],
                 impacts: Collection[str] | None, url_without_scheme: bool, inner: bool = False,
                 ) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of ``query`` (``inner``: a subquery to close) of ``kinds`` and ``impacts``, in the
        order :meth:`listed` gives, on a server-side cursor fetching :data:`.store.FETCH_ROWS` at a time."""
        order = f'{URL_WITHOUT_SCHEME} COLLATE "C", ' if url_without_scheme else ""
        query += ("" if impacts is None else " AND i.impact = ANY(%s)") + (") AS i" if inner else "")
        query += f' ORDER BY i.kind, {order}i.value COLLATE "C"'
        params = (*times, list(kinds), *(() if impacts is None else (list(impacts),)))
        self._cursors += 1
        try:
            with self._db.transaction(), self._db.cursor(name=f"listed_{self._cursors}") as cursor:
                cursor.itersize = FETCH_ROWS
                cursor.execute(query, params)
                while rows := cursor.fetchmany(FETCH_ROWS):
                    yield rows
        except psycopg.Error as exc:
            raise self._adapter.failure("cannot read", exc) from None

    def find(self, wanted: Collection[tuple[str, str]]) -> list[Listing]:
        return matching(wanted, lambda values: self._query(FIND, (values,)), Listing)

    def history(self, wanted: Collection[tuple[str, str]]) -> list[Sighting]:
        return matching(wanted, lambda values: self._query(HISTORY, (values,)), Sighting)

    def close(self) -> None:
        self._db.close()


def _instant(milliseconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(milliseconds / 1000, _UTC)


def _text(value: str | None) -> str | None:
    return value.replace("\0", "\ufffd") if value is not None and "\0" in value else value


def _json(threat: Threat) -> str:
    """The threat's JSON text, with NUL (which jsonb cannot hold) as U+FFFD."""
    if "\\u0000" not in threat.json and "\0" not in threat.json:
        return threat.json
    return json.dumps(_without_nul(threat.raw), separators=(",", ":"), ensure_ascii=False)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value
