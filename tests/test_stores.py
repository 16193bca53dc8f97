"""The IOC store, SQLite and PostgreSQL alike: the adapter contract, the tables, the history, the reader."""

from __future__ import annotations

import pytest
from contract import AdapterContract, DiscardsUncommitted, deliver
from support import sample_threats

from phishme_intel.adapters.store import Sighting, without_scheme
from phishme_intel.errors import AdapterError
from phishme_intel.models import ThreatRef


@pytest.fixture
def make_adapter(store):
    return store.adapter


@pytest.fixture
def held(store):
    return lambda: {ThreatRef(kind, tid) for kind, tid in store.rows("SELECT threat_type, threat_id FROM threats")}


@pytest.fixture
def broken_adapter(store):
    return store.broken()


class TestStoreContract(AdapterContract, DiscardsUncommitted):
    pass


def indicator_keys(store):
    return set(store.rows("SELECT threat_type, threat_id, kind, value FROM indicators"))


def listed_history_keys(store):
    return set(store.rows(
        "SELECT threat_type, threat_id, kind, value FROM indicator_history WHERE withdrawn_at IS NULL"
    ))


def test_indicators_replace_on_redelivery_and_go_with_withdrawal(store):
    threats = sample_threats(malware=2, phish=1)
    adapter = store.adapter()
    adapter.open()
    adapter.deliver(threats)
    adapter.deliver(threats)
    adapter.commit()
    assert store.count("indicators") == sum(len(t.indicators) for t in threats) > 0
    adapter.withdraw([threats[0].ref])
    adapter.commit()
    adapter.close()
    left = store.rows("SELECT count(*) FROM indicators WHERE threat_type = ? AND threat_id = ?", *threats[0].ref)
    assert left == [(0,)]
    assert store.rows("SELECT threat_type, threat_id FROM deleted_threats") == [tuple(threats[0].ref)]


def test_uncommitted_deliveries_are_rolled_back_on_close(store):
    adapter = store.adapter()
    adapter.open()
    adapter.deliver(sample_threats())
    adapter.close()
    assert store.count("threats") == store.count("indicator_history") == 0


def test_store_records_its_schema_version(store):
    deliver(store.adapter())
    assert store.rows("SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]


def test_phish_indicators_include_urls_hosts_ip_and_kit_emails(store):
    deliver(store.adapter(), sample_threats(malware=0, phish=4))
    kinds = {kind for (kind,) in store.rows("SELECT DISTINCT kind FROM indicators")}
    assert {"url", "domain", "ipv4"} <= kinds


def test_a_redelivered_threat_clears_its_tombstone(store):
    threat = sample_threats(malware=1, phish=0)[0]
    deliver(store.adapter(), [threat], withdrawn=[threat.ref])
    deliver(store.adapter(), [threat])
    assert store.count("deleted_threats") == 0
    assert store.count("threats") == 1


def test_history_keeps_a_withdrawn_indicator_with_its_threat_and_withdrawal_time(store):
    threats = sample_threats(malware=2, phish=1)
    gone = threats[0]
    deliver(store.adapter(), threats)
    listed = indicator_keys(store)
    deliver(store.adapter(), withdrawn=[gone.ref])
    wanted = {(i.kind, i.value) for i in gone.indicators}
    reader = store.adapter().reader()
    try:
        sightings = [s for s in reader.history(wanted) if (s.threat_type, s.threat_id) == gone.ref]
        listings = reader.find(wanted)
    finally:
        reader.close()
    assert {(s.kind, s.value) for s in sightings} == wanted
    assert all(s.withdrawn_at is not None and s.first_seen <= s.last_seen <= s.withdrawn_at for s in sightings)
    assert all((x.threat_type, x.threat_id) != gone.ref for x in listings)
    assert listed_history_keys(store) == indicator_keys(store) == {k for k in listed if k[:2] != tuple(gone.ref)}


def test_history_first_seen_stays_last_seen_moves_and_redelivery_lists_again(store):
    threat = sample_threats(malware=1, phish=0)[0]
    indicator = threat.indicators[0]
    wanted = {(indicator.kind, indicator.value)}

    def sighting() -> Sighting:
        reader = store.adapter().reader()
        try:
            return next(s for s in reader.history(wanted) if (s.threat_type, s.threat_id) == threat.ref)
        finally:
            reader.close()

    deliver(store.adapter(), [threat])
    first = sighting()
    deliver(store.adapter(), withdrawn=[threat.ref])
    withdrawn = sighting()
    deliver(store.adapter(), [threat])
    again = sighting()
    assert first.withdrawn_at is None and withdrawn.withdrawn_at is not None and again.withdrawn_at is None
    assert first.first_seen == withdrawn.first_seen == again.first_seen
    assert first.last_seen == withdrawn.last_seen <= again.last_seen


def test_a_new_version_of_a_threat_without_an_indicator_marks_it_no_longer_listed(store):
    threat = sample_threats(malware=1, phish=0)[0]
    deliver(store.adapter(), [threat])
    dropped = threat.indicators[0]
    threat.indicators.remove(dropped)
    deliver(store.adapter(), [threat])
    rows = store.rows(
        "SELECT withdrawn_at IS NOT NULL FROM indicator_history WHERE kind = ? AND value = ? AND threat_id = ?",
        dropped.kind, dropped.value, threat.id,
    )
    assert rows == [(True,)]
    assert listed_history_keys(store) == indicator_keys(store)


def test_the_history_of_one_transaction_keeps_what_a_second_version_dropped_and_what_was_withdrawn(store):
    """A new store (SQLite's bulk load) given a threat twice and one delivered then withdrawn, before one commit."""
    threat, gone, kept = sample_threats(malware=3, phish=0)
    adapter = store.adapter()
    adapter.open()
    adapter.deliver([threat, kept])
    dropped = threat.indicators.pop(0)
    adapter.deliver([threat])
    adapter.deliver([gone])
    adapter.withdraw([gone.ref])
    adapter.commit()
    adapter.close()
    wanted = {(i.kind, i.value) for t in (threat, gone, kept) for i in t.indicators} | {(dropped.kind, dropped.value)}
    reader = store.adapter().reader()
    try:
        withdrawn = {(s.threat_id, s.kind, s.value) for s in reader.history(wanted) if s.withdrawn_at is not None}
    finally:
        reader.close()
    gone_rows = {(gone.id, i.kind, i.value) for i in gone.indicators}
    assert withdrawn == {(threat.id, dropped.kind, dropped.value)} | gone_rows
    assert listed_history_keys(store) == indicator_keys(store) == {
        (t.kind, t.id, i.kind, i.value) for t in (threat, kept) for i in t.indicators
    }


def test_reader_lists_indicators_of_the_kinds_asked_published_since(store):
    threats = sample_threats(malware=4, phish=2)
    deliver(store.adapter(), threats)
    newest = max(t.last_published for t in threats)
    reader = store.adapter().reader()
    try:
        recent = list(reader.listed(["url", "domain"], newest))
        everything = list(reader.listed(["url", "domain", "ipv4"], 0))
    finally:
        reader.close()
    assert {x.kind for x in everything} == {"url", "domain", "ipv4"}
    expected = {(t.kind, t.id, i.kind, i.value) for t in threats for i in t.indicators
                if i.kind in ("url", "domain") and t.last_published >= newest}
    assert {(x.threat_type, x.threat_id, x.kind, x.value) for x in recent} == expected != set()


def reader_rows(store, impacts):
    reader = store.adapter().reader()
    try:
        return list(reader.listed(["url", "domain"], 0, impacts))
    finally:
        reader.close()


def flat(runs):
    """The ``(kind, value)`` of each value of the ``(kind, values)`` runs :meth:`listed_values` gives."""
    return [(kind, value) for kind, values in runs for value in values]


def test_reader_lists_in_kind_and_value_order_urls_by_what_follows_the_scheme_when_asked(store):
    threats = sample_threats(malware=4, phish=2)
    deliver(store.adapter(), threats)
    reader = store.adapter().reader()
    try:
        by_value = [(x.kind, x.value) for x in reader.listed(["url", "domain"], 0)]
        by_rest = [(x.kind, x.value) for x in reader.listed(["url", "domain"], 0, url_without_scheme=True)]
        majors = {x.impact for x in reader.listed(["url", "domain"], 0, ["Major"])}
        distinct = flat(reader.listed_values(["url", "domain"], 0, url_without_scheme=True))
        distinct_majors = flat(reader.listed_values(["url", "domain"], 0, ["Major"]))
    finally:
        reader.close()
    assert by_value == sorted(by_value)
    assert by_rest == sorted(by_value, key=lambda row: (row[0], without_scheme(row[1]), row[1])) != by_value
    assert majors == {"Major"}
    assert distinct == list(dict.fromkeys(by_rest))
    assert distinct_majors == sorted({(x.kind, x.value) for x in reader_rows(store, ["Major"])})


def test_reader_finds_exactly_the_kind_and_value_asked_with_context(store):
    threats = sample_threats(malware=3, phish=2)
    deliver(store.adapter(), threats)
    phish = next(t for t in threats if t.kind == "phish")
    url = next(i for i in phish.indicators if i.kind == "url")
    reader = store.adapter().reader()
    try:
        found = reader.find({("url", url.value), ("domain", url.value), ("md5", "0" * 32)})
    finally:
        reader.close()
    match = next(x for x in found if (x.threat_type, x.threat_id) == phish.ref)
    assert {(x.kind, x.value) for x in found} == {("url", url.value)}
    assert (match.impact, match.role, match.threat_label) == (url.impact, url.role, phish.label)
    assert (match.first_published, match.last_published) == (phish.first_published, phish.last_published)
    assert match.detail_url == phish.raw["threatDetailURL"]


def test_a_reader_of_a_store_never_synced_is_a_clear_adapter_error(store):
    with pytest.raises(AdapterError) as failure:
        store.adapter().reader()
    assert "sync" in str(failure.value)
