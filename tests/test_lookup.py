"""``lookup``: values as an analyst pastes them, found in either store; the CLI; the query plan."""

from __future__ import annotations

import json
import subprocess

import pytest
from contract import deliver
from support import ROOT, cli_command, run_cli, write_config

from phishme_intel import lookup
from phishme_intel.adapters import postgresql, sqlite
from phishme_intel.models import parse_threat

NOW = 1_764_000_000_000  # 2025-11-24T16:00:00Z
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
URL = "https://invoice-docs.example.com/a?b=c"
FAMILY = {"familyName": "Qakbot"}


def malware(threat_id, blocks, executables=(), senders=()):
    return parse_threat({
        "id": threat_id, "threatType": "MALWARE", "label": f"Campaign {threat_id}", "firstPublished": NOW,
        "lastPublished": NOW + 3_600_000, "threatDetailURL": f"https://portal.example/m/{threat_id}",
        "blockSet": [
            {"blockType": kind, "data_1": value, "impact": "Major", "role": "C2", "malwareFamily": FAMILY}
            for kind, value in blocks
        ],
        "executableSet": [{"md5Hex": md5, "severityLevel": "Moderate"} for md5 in executables],
        "senderIpSet": [{"ip": ip} for ip in senders],
    })


THREATS = [
    malware(1, [("URL", {"url": URL}), ("Domain Name", "*.evil-cdn-example.org"),
                ("IPv4 Address", "203.0.113.9")], executables=[MD5]),
    malware(2, [("Domain Name", "xn--bcher-docs-9db.example")], senders=["203.0.113.9"]),
]


@pytest.fixture
def reader(store):
    deliver(store.adapter(), THREATS)
    opened = store.adapter().reader()
    yield opened
    opened.close()


def found(reader, value, history=False):
    """``(kind, value, threat id)`` of each match for ``value``."""
    answer = lookup.ask(reader, [value], history=history)[0]
    return sorted((m.kind, m.value, m.threat_id) for m in answer.matches)


@pytest.mark.parametrize(
    ("pasted", "expected"),
    [
        pytest.param(MD5.upper(), [("md5", MD5, 1)], id="upper-case-hash"),
        pytest.param("hxxps://invoice-docs[.]example[.]com/a?b=c", [("url", URL, 1)], id="defanged-url"),
        pytest.param("invoice-docs.example.com/a?b=c", [("url", URL, 1)], id="url-without-scheme"),
        pytest.param("203.0.113.9", [("ipv4", "203.0.113.9", 1), ("sender_ip", "203.0.113.9", 2)],
                     id="ip-as-ipv4-and-sender-ip"),
        pytest.param("a.b.evil-cdn-example.org", [("domain", "*.evil-cdn-example.org", 1)], id="host-under-wildcard"),
        pytest.param("https://x.evil-cdn-example.org/p", [("domain", "*.evil-cdn-example.org", 1)],
                     id="url-by-its-host"),
        pytest.param("bücher-docs.example", [("domain", "xn--bcher-docs-9db.example", 2)], id="unicode-host"),
        pytest.param("unknown.example.net", [], id="unknown"),
    ],
)
def test_a_value_as_pasted_is_found_in_its_canonical_forms(reader, pasted, expected):
    assert found(reader, pasted) == expected


def test_a_match_carries_its_threat_s_context(reader):
    match = lookup.ask(reader, ["203.0.113.9"])[0].matches
    ipv4 = next(m for m in match if m.kind == "ipv4")
    assert (ipv4.threat_type, ipv4.threat_label, ipv4.impact, ipv4.role, ipv4.malware_family) == (
        "malware", "Campaign 1", "Major", "C2", "Qakbot")
    assert (lookup.iso(ipv4.first_published), lookup.iso(ipv4.last_published)) == (
        "2025-11-24T16:00:00Z", "2025-11-24T17:00:00Z")
    assert ipv4.detail_url == "https://portal.example/m/1"


def test_history_tells_when_a_withdrawn_indicator_was_listed_and_withdrawn(store):
    deliver(store.adapter(), THREATS)
    deliver(store.adapter(), withdrawn=[THREATS[0].ref])
    reader = store.adapter().reader()
    try:
        answer = lookup.ask(reader, [MD5], history=True)[0]
    finally:
        reader.close()
    assert answer.matches == [] and answer.found
    (sighting,) = answer.history
    assert (sighting.kind, sighting.threat_id) == ("md5", 1)
    assert sighting.first_seen <= sighting.last_seen <= sighting.withdrawn_at


def store_config(tmp_path, simulator, store):
    if store.name == "sqlite":
        return write_config(tmp_path, simulator.url, integration_sqlite={"use": "True", "path": store.settings["path"]})
    section = {"use": "True", "conninfo": store.settings["conninfo"], "pass": store.settings["pass"]}
    return write_config(tmp_path, simulator.url, integration_sqlite={"use": "False"}, integration_postgresql=section)


def test_the_cli_prints_each_match_and_exits_0_when_any_matched_1_when_none_did(tmp_path, simulator, store):
    config = store_config(tmp_path, simulator, store)
    deliver(store.adapter(), THREATS)

    hit = run_cli(config, "lookup", MD5.upper(), "nothing.example.net")
    miss = run_cli(config, "lookup", "nothing.example.net")

    assert hit.returncode == 0, hit.stderr
    assert hit.stdout.splitlines() == [
        f"{MD5} (for {MD5.upper()}): md5 of malware threat 1: Campaign 1",
        "  impact Moderate, role executable, malware family -",
        "  first published 2025-11-24T16:00:00Z, last published 2025-11-24T17:00:00Z",
        "  https://portal.example/m/1",
        "nothing.example.net: not found",
    ]
    assert (miss.returncode, miss.stdout) == (1, "nothing.example.net: not found\n")


def test_the_cli_reads_values_from_stdin_and_prints_json_lines_with_history(tmp_path, simulator, store):
    config = store_config(tmp_path, simulator, store)
    deliver(store.adapter(), THREATS)
    deliver(store.adapter(), withdrawn=[THREATS[1].ref])

    result = subprocess.run(
        cli_command(config, "lookup", "--json", "--history", "-"), input="203.0.113.9\n\nbücher-docs.example\n",
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    matches = [(r["query"], r["kind"], r["threat_id"]) for r in records if r["record"] == "match"]
    assert matches == [("203.0.113.9", "ipv4", 1)]
    assert records[0]["first_published"] == "2025-11-24T16:00:00Z"
    assert records[0]["detail_url"] == "https://portal.example/m/1"
    withdrawn = {(r["query"], r["kind"], r["threat_id"]) for r in records
                 if r["record"] == "history" and r["withdrawn_at"] is not None}
    assert withdrawn == {("203.0.113.9", "sender_ip", 2), ("bücher-docs.example", "domain", 2)}


def test_the_cli_exits_78_when_the_config_enables_no_store(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, integration_sqlite={"use": "False"},
                          integration_json_files={"use": "True"})
    result = run_cli(config, "lookup", MD5)
    assert result.returncode == 78
    assert "lookup needs a store" in result.stderr


def test_the_cli_exits_74_when_the_store_does_not_exist_yet(tmp_path, simulator):
    result = run_cli(write_config(tmp_path, simulator.url), "lookup", MD5)
    assert result.returncode == 74
    assert "a sync run with [integration_sqlite] creates it" in result.stderr


GENERATED = 50_000


def generated_store(store):
    """A store of GENERATED indicators (and their history), loaded with SQL, the planner's statistics up to date."""
    deliver(store.adapter())
    if store.name == "sqlite":
        numbers = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {GENERATED}) "
        store.execute([
            f"{numbers} INSERT INTO threats SELECT 'malware', i, 'Campaign', 1, 1, '{{}}' FROM n WHERE i % 10 = 0",
            f"{numbers} INSERT INTO indicators SELECT 'malware', i / 10 * 10, 'domain', 'host' || i || '.example.com', "
            "'Major', 'C2', NULL FROM n",
            "INSERT INTO indicator_history SELECT threat_type, threat_id, kind, value, 1, 1, NULL FROM indicators",
            "ANALYZE",
        ])
    else:
        numbers = f"FROM generate_series(1, {GENERATED}) AS i"
        store.execute([
            f"INSERT INTO threats SELECT 'malware', i, 'Campaign', now(), now(), '{{}}' {numbers} WHERE i % 10 = 0",
            f"INSERT INTO indicators SELECT 'malware', i / 10 * 10, 'domain', 'host' || i || '.example.com', 'Major', "
            f"'C2', NULL {numbers}",
            "INSERT INTO indicator_history SELECT threat_type, threat_id, kind, value, now(), now() FROM indicators",
            "ANALYZE",
        ])


def test_a_lookup_by_value_reads_the_index_not_the_table(store):
    generated_store(store)
    values = [f"host{i}.example.com" for i in range(1, 1001, 7)]
    if store.name == "sqlite":
        query = sqlite.FIND.format(values=", ".join("?" * len(values)))
        plan = " ".join(row[-1] for row in store.rows(f"EXPLAIN QUERY PLAN {query}", *values))
        assert "i USING INDEX indicators_by_value (value=?)" in plan
        assert "SCAN i" not in plan
        history = store.rows(f"EXPLAIN QUERY PLAN {sqlite.HISTORY.format(values='?')}", values[0])
        assert "USING INDEX indicator_history_by_value (value=?)" in history[0][-1]
    else:
        with store.connect() as db:
            plan = " ".join(row[0] for row in db.execute(f"EXPLAIN {postgresql.FIND}", (values,)))
            history = " ".join(row[0] for row in db.execute(f"EXPLAIN {postgresql.HISTORY}", (values,)))
        assert "indicators_by_value" in plan and "Seq Scan on indicators" not in plan
        assert "indicator_history_by_value" in history
