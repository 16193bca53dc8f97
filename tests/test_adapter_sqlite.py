"""The embedded SQLite store: what only SQLite has (WAL, the deferred indexes, the migration from schema 1).

What both stores do alike (the adapter contract, the tables, the history) is in test_stores.py.
"""

from __future__ import annotations

import copy
import sqlite3

from contract import deliver
from support import sample_threats

from phishme_intel.adapters.sqlite import SqliteAdapter
from phishme_intel.models import parse_threat

SCHEMA_1 = """
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
CREATE INDEX indicators_by_value ON indicators (kind, value);
CREATE TABLE deleted_threats (
    threat_type TEXT NOT NULL, threat_id INTEGER NOT NULL, deleted_at INTEGER NOT NULL,
    PRIMARY KEY (threat_type, threat_id)
);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def test_store_uses_wal(tmp_path):
    database = tmp_path / "store.sqlite3"
    deliver(SqliteAdapter({"path": str(database)}))
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def _indexes(database) -> list[str]:
    with sqlite3.connect(database) as db:
        found = db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        return [name for (name,) in found]


def test_an_empty_store_is_bulk_loaded_and_indexed_when_closed(tmp_path):
    database = tmp_path / "store.sqlite3"
    adapter = SqliteAdapter({"path": str(database)})
    adapter.open()
    adapter.deliver(sample_threats())
    adapter.commit()
    assert _indexes(database) == []
    adapter.close()
    assert _indexes(database) == ["indicators_by_value", "indicator_history_by_value"]
    with sqlite3.connect(database) as db:
        plan = db.execute("EXPLAIN QUERY PLAN SELECT * FROM indicators WHERE value = 'x'").fetchall()
    assert "indicators_by_value" in repr(plan)


def test_a_run_cut_short_before_the_index_leaves_it_to_the_next_run(tmp_path):
    database = tmp_path / "store.sqlite3"
    first = SqliteAdapter({"path": str(database)})
    first.open()
    first.deliver(sample_threats())
    first.commit()
    del first  # the run dies here: close() never runs
    assert _indexes(database) == []
    second = SqliteAdapter({"path": str(database)})
    second.open()
    assert _indexes(database) == ["indicators_by_value", "indicator_history_by_value"]
    second.close()


def test_a_redelivered_threat_holds_exactly_its_new_indicators(tmp_path):
    database = tmp_path / "store.sqlite3"
    before = sample_threats(malware=1, phish=0)[0]
    raw = copy.deepcopy(before.raw)
    raw["blockSet"].pop(0)
    raw["blockSet"][0]["impact"] = "None" if raw["blockSet"][0]["impact"] != "None" else "Major"
    raw["blockSet"].append({"blockType": "Domain Name", "data_1": "added.example", "impact": "Minor", "role": "C2"})
    after = parse_threat(raw)
    adapter = SqliteAdapter({"path": str(database)})
    adapter.open()
    adapter.deliver([before])
    adapter.commit()
    adapter.deliver([after])
    adapter.commit()
    adapter.close()
    with sqlite3.connect(database) as db:
        held = set(db.execute("SELECT kind, value, impact, role, malware_family FROM indicators"))
    assert held == {tuple(indicator[:5]) for indicator in after.indicators}
    assert ("domain", "added.example", "Minor", "C2", None) in held


def test_a_new_store_has_large_pages_and_an_older_one_keeps_its_own(tmp_path):
    older = tmp_path / "older.sqlite3"
    with sqlite3.connect(older) as db:
        db.execute("PRAGMA page_size = 4096")
        db.execute("CREATE TABLE placeholder (x)")
    for path, expected in ((tmp_path / "new.sqlite3", 65536), (older, 4096)):
        adapter = SqliteAdapter({"path": str(path)})
        adapter.open()
        adapter.deliver(sample_threats())
        adapter.commit()
        adapter.close()
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA page_size").fetchone() == (expected,)
            assert db.execute("SELECT count(*) FROM threats").fetchone() == (9,)


def test_a_schema_1_store_is_migrated_with_its_indicators_in_the_history(tmp_path):
    database = tmp_path / "store.sqlite3"
    threats = sample_threats(malware=2, phish=1)
    with sqlite3.connect(database) as db:
        db.executescript(SCHEMA_1)
        db.executemany("INSERT INTO indicators VALUES (?, ?, ?, ?, ?, ?, ?)", [
            (t.kind, t.id, i.kind, i.value, i.impact, i.role, i.malware_family) for t in threats for i in t.indicators
        ])
    deliver(SqliteAdapter({"path": str(database)}), withdrawn=[threats[0].ref])
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
        history = db.execute("SELECT threat_type, threat_id, kind, value, withdrawn_at IS NOT NULL "
                             "FROM indicator_history").fetchall()
        plan = db.execute("EXPLAIN QUERY PLAN SELECT * FROM indicators WHERE value = 'x'").fetchall()
    assert sorted(history) == sorted(
        (t.kind, t.id, i.kind, i.value, t is threats[0]) for t in threats for i in t.indicators
    )
    assert "USING INDEX indicators_by_value (value=?)" in plan[0][-1]
