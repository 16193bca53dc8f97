"""Malformed and hostile threat JSON: one bad threat is skipped, never the page it came in.

Property-based (hypothesis): real threat documents from the simulator are mutated at random
(any field set to any JSON value, fields dropped, unknown fields added) and mixed with
arbitrary JSON. Parsing a threat either gives a threat whose indicators and JSON text can be
computed, or raises ThreatFormatError; the sync's per-threat guard (``Run.parse``) lets
every good threat of the page through, and the SQLite store takes everything the guard
passed. The last test runs the real CLI against a simulator that slips hostile documents
into every search page.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import PASSWORD, USER, run_cli, store, write_config

from phishme_intel import config as config_module
from phishme_intel.adapters.sqlite import SqliteAdapter
from phishme_intel.client import ApiClient
from phishme_intel.errors import ThreatFormatError
from phishme_intel.models import Threat, ThreatRef, parse_threat
from phishme_intel.simulator import Dataset, Simulator
from phishme_intel.state import ConfigCheckpoint
from phishme_intel.sync.engine import Engine
from phishme_intel.sync.fanout import Fanout
from phishme_intel.sync.pipeline import Pipeline
from phishme_intel.sync.updates import reduce_changelog

SAMPLE = Dataset(seed=17, malware=12, phish=6, days=5)
GOOD = [SAMPLE.threat(kind, tid) for kind, tid in sorted(SAMPLE.live_ids())]
HOSTILE_IDS = 9_000_000  # mutated documents get ids from here on, apart from the good ones

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=20),
    st.sampled_from(["", " ", "²", "١٢", "12abc", "<redacted>", "*example.com", "http://[::1", "\x00", "\ud800"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_threats(draw: st.DrawFn) -> dict[str, Any]:
    """A real threat with a few fields (top level or one level down) set to anything, dropped or added."""
    threat = json.loads(json.dumps(draw(st.sampled_from(GOOD))))
    threat["id"] = HOSTILE_IDS + draw(st.integers(0, 10**6))
    for _ in range(draw(st.integers(1, 4))):
        target = threat
        key = draw(st.sampled_from(sorted(threat)))
        nested = threat[key]
        if isinstance(nested, list) and nested and isinstance(nested[0], dict) and draw(st.booleans()):
            target = nested[0]
            key = draw(st.sampled_from(sorted(target) or ["x"]))
        action = draw(st.sampled_from(["set", "drop", "add"]))
        if action == "set":
            target[key] = draw(json_values)
        elif action == "drop":
            target.pop(key, None)
        else:
            target[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return threat


hostile_threats = st.one_of(mutated_threats(), json_values, st.dictionaries(st.text(max_size=12), json_values))


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[list[Any]], list[Threat]]]:
    """The sync's per-threat guard, ``Run.parse``, of a run made of real parts (it sends no request)."""
    config = config_module.load(str(write_config(tmp_path_factory.mktemp("guard"), "http://127.0.0.1:9/apiv1")))
    client, pipeline = ApiClient(config.api), Pipeline(1)
    run = Engine(client, Fanout([]), ConfigCheckpoint(config.path), config.api, pipeline, started=0.0)
    yield run.parse
    pipeline.close()
    client.close()


def stored_refs(threats: list[Threat]) -> set[ThreatRef]:
    """Deliver ``threats`` to a new SQLite store through the engine's fan-out; what it then holds.

    The store is read on a connection of its own: the adapter's lives on the fan-out's thread.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "store.sqlite3")
        fanout = Fanout([SqliteAdapter({"path": path})])
        fanout.open()
        try:
            fanout.deliver(threats)
            fanout.commit()
        finally:
            fanout.close()
        with closing(sqlite3.connect(path)) as db:
            return {ThreatRef(kind, tid) for kind, tid in db.execute("SELECT threat_type, threat_id FROM threats")}


@settings(max_examples=300, deadline=None)
@given(hostile_threats)
def test_parsing_hostile_json_gives_a_usable_threat_or_a_threat_format_error(raw):
    try:
        threat = parse_threat(raw)
    except ThreatFormatError:
        return
    assert threat.kind in ("malware", "phish")
    assert 0 <= threat.id < 2**63
    assert 0 < threat.first_published < 2**63 and 0 < threat.last_published < 2**63
    for indicator in threat.indicators:
        assert isinstance(indicator.value, str) and indicator.value
    threat.json.encode("utf-8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostile=st.lists(hostile_threats, min_size=1, max_size=5), data=st.data())
def test_hostile_threats_never_cost_the_good_threats_of_their_page(guard, hostile, data):
    page = list(GOOD)
    for item in hostile:
        page.insert(data.draw(st.integers(0, len(page))), item)

    passed = guard(page)

    good = {ThreatRef(t["threatType"].lower(), t["id"]) for t in GOOD}
    assert good <= {threat.ref for threat in passed}
    assert good <= stored_refs(passed)


@settings(max_examples=200, deadline=None)
@given(hostile=st.lists(json_values | st.dictionaries(st.sampled_from(
    ["threatId", "threatType", "occurredOn", "timestamp", "deleted"]), json_values), max_size=6), data=st.data())
def test_hostile_changelog_entries_never_cost_the_good_entries(hostile, data):
    entries = [{"threatId": n, "threatType": kind, "occurredOn": 1_700_000_000_000 + n, "deleted": n % 3 == 0}
               for n, kind in enumerate(["malware", "phish"] * 5, start=1)]
    page = list(entries)
    for item in hostile:
        page.insert(data.draw(st.integers(0, len(page))), item)

    deleted, changed, invalid = reduce_changelog(page, ("malware", "phish"))

    assert {ThreatRef(e["threatType"], e["threatId"]) for e in entries} <= set(deleted) | set(changed)
    assert invalid <= len(hostile)


HOSTILE_DOCUMENTS = [
    None,
    "a threat",
    [1, 2, 3],
    {},
    {"threatType": "MALWARE", "id": "²", "firstPublished": 1_700_000_000_000, "lastPublished": 1_700_000_000_000},
    {"threatType": "MALWARE", "id": 2**64, "firstPublished": 1_700_000_000_000, "lastPublished": 1_700_000_000_000},
    {"threatType": "PHISH", "id": -4, "firstDate": 1_700_000_000_000, "lastDate": 1_700_000_000_000},
    {"threatType": "MALWARE", "id": 11, "firstPublished": 10**30, "lastPublished": 10**30},
    {"threatType": "SPAM", "id": 12, "firstPublished": 1_700_000_000_000},
    {"threatType": "MALWARE", "id": 13, "firstPublished": "yesterday", "lastPublished": None},
    {"threatType": "MALWARE", "id": 14, "label": "bad \ud800 text", "firstPublished": 1_700_000_000_000,
     "lastPublished": 1_700_000_000_000},
]


class HostileDataset(Dataset):
    """A dataset whose every search page also carries the hostile documents."""

    def search_json(self, begin_ms: int, end_ms: int, kind: str, offset: int, limit: int) -> tuple[int, list[bytes]]:
        total, page = super().search_json(begin_ms, end_ms, kind, offset, limit)
        return total, [*(json.dumps(doc).encode() for doc in HOSTILE_DOCUMENTS), *page]


def test_a_sync_skips_hostile_threats_and_delivers_every_other_one(tmp_path: Path):
    dataset = HostileDataset(seed=23, malware=80, phish=20, days=5)
    with Simulator(dataset, user=USER, password=PASSWORD) as simulator:
        config = write_config(tmp_path, simulator.url, pm_api={"results_per_page": "30"})

        result = run_cli(config)

    assert result.returncode == 0, result.stderr
    assert store(tmp_path / "phishme_intel.sqlite3")["threats"] == dataset.live_ids()
    log = (tmp_path / "phishme_intel.log").read_text()
    assert log.count("skipped a threat the API sent") >= len(HOSTILE_DOCUMENTS)
    with sqlite3.connect(tmp_path / "phishme_intel.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM threats WHERE threat_id IN (11, 13, 14)").fetchone() == (0,)
