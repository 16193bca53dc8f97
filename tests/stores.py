"""The two stores, SQLite and PostgreSQL, behind one face, so one test covers both.

A :class:`StoreUnderTest` makes adapters on one real store (a SQLite file, or a database of
the tests' PostgreSQL cluster), a broken one, and runs SQL against the store with ``?``
placeholders whichever the store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from phishme_intel.adapters.base import Adapter
from phishme_intel.adapters.postgresql import PostgresqlAdapter
from phishme_intel.adapters.sqlite import SqliteAdapter


@dataclass
class StoreUnderTest:
    """One store: ``name`` is its adapter's, ``settings`` its config section's values."""

    name: str
    settings: Mapping[str, Any]
    broken_settings: Mapping[str, Any]
    connect: Callable[[], Any]

    @property
    def adapter_class(self) -> type[Adapter]:
        return SqliteAdapter if self.name == "sqlite" else PostgresqlAdapter

    def adapter(self) -> Adapter:
        """A new adapter on this store."""
        return self.adapter_class(dict(self.settings))

    def broken(self) -> Adapter:
        """An adapter on a store that cannot be used."""
        return self.adapter_class(dict(self.broken_settings))

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """The rows ``sql`` (with ``?`` placeholders) selects, in a connection of its own."""
        if self.name == "sqlite":
            with sqlite3.connect(self.settings["path"]) as db:
                return db.execute(sql, params).fetchall()
        with self.connect() as db:
            return db.execute(sql.replace("?", "%s"), params).fetchall()

    def count(self, table: str) -> int:
        return self.rows(f"SELECT count(*) FROM {table}")[0][0]

    def execute(self, statements: Sequence[str]) -> None:
        """Run ``statements`` (no parameters) and commit: to doctor a store."""
        if self.name == "sqlite":
            with sqlite3.connect(self.settings["path"]) as db:
                for statement in statements:
                    db.execute(statement)
            return
        with self.connect() as db:
            for statement in statements:
                db.execute(statement)


def postgres_store(conninfo: str, password: str, broken_conninfo: str) -> StoreUnderTest:
    return StoreUnderTest(
        "postgresql",
        {"conninfo": conninfo, "pass": password},
        {"conninfo": broken_conninfo, "pass": password},
        lambda: psycopg.connect(conninfo, password=password, autocommit=True),
    )
