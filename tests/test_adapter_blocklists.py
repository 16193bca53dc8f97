"""Blocklists built from the store (SQLite or PostgreSQL): the contract, the filters, the CSV, the atomic rewrite."""

from __future__ import annotations

import csv
import logging
import os
import sqlite3
import time

import pytest
from configupdater import ConfigUpdater
from contract import AdapterContract, DiscardsUncommitted
from support import run_cli, sample_threats, write_config

from phishme_intel.adapters.blocklists import BlocklistsAdapter, neutralised
from phishme_intel.adapters.sqlite import SqliteAdapter
from phishme_intel.errors import AdapterError
from phishme_intel.models import Gate, parse_threat
from phishme_intel.options import parse_section
from phishme_intel.sync.fanout import Fanout

FAMILY = {"familyName": "Qakbot"}
EVERY_LINE_KIND = "url, domain, ipv4, email, md5, sha1, sha256, sender_ip, sender_email"


def settings(base_dir, **raw):
    """The adapter's settings parsed from ``raw`` as config.ini would give them."""
    problems = []
    parsed = parse_section("integration_blocklists", raw, BlocklistsAdapter.options, problems, base_dir=str(base_dir))
    assert problems == []
    return parsed


def lists(folder):
    """Each ``<kind>.txt`` in ``folder`` as its list of lines."""
    return {name.removesuffix(".txt"): (folder / name).read_text().splitlines()
            for name in sorted(os.listdir(folder)) if name.endswith(".txt")}


def files(folder):
    """Every file in ``folder``, by name, as bytes."""
    return {name: (folder / name).read_bytes() for name in os.listdir(folder)}


def sync(tmp_path, threats=(), withdrawn=(), **raw):
    """One run's worth of work through the engine's fan-out: the store first, then the lists."""
    fanout = Fanout([
        SqliteAdapter({"path": str(tmp_path / "phishme_intel.sqlite3")}),
        BlocklistsAdapter(settings(tmp_path, **{"folder": "lists", **raw})),
    ])
    fanout.open()
    try:
        fanout.deliver(list(threats))
        fanout.withdraw(list(withdrawn))
        fanout.commit()
    finally:
        fanout.close()
    return lists(tmp_path / "lists")


def malware(threat_id, blocks, last_published=None, **fields):
    published = last_published or int(time.time() * 1000)
    return parse_threat({
        "id": threat_id, "threatType": "MALWARE", "label": f"Campaign {threat_id}", "firstPublished": published,
        "lastPublished": published, "blockSet": [
            {"blockType": kind, "data_1": value, "impact": impact, "role": "C2", "malwareFamily": FAMILY}
            for kind, value, impact in blocks
        ], **fields,
    })


@pytest.fixture
def make_adapter(tmp_path):
    return lambda: Fanout([
        SqliteAdapter({"path": str(tmp_path / "phishme_intel.sqlite3")}),
        BlocklistsAdapter(settings(tmp_path, folder="lists", kinds=EVERY_LINE_KIND, min_impact="none")),
    ])


@pytest.fixture
def held(tmp_path):
    """The sample threats every one of whose listable values is in the lists."""
    def listed():
        present = {(kind, value) for kind, values in lists(tmp_path / "lists").items() for value in values}
        kinds = {kind.strip() for kind in EVERY_LINE_KIND.split(",")}
        return {
            threat.ref for threat in sample_threats()
            if {(i.kind, i.value) for i in threat.indicators if i.kind in kinds} <= present
        }
    return listed


@pytest.fixture
def broken_adapter(tmp_path):
    (tmp_path / "a-file").write_text("")
    return BlocklistsAdapter(settings(tmp_path, folder=str(tmp_path / "a-file" / "lists")))


class TestBlocklistsContract(AdapterContract, DiscardsUncommitted):
    pass


def test_one_sorted_list_per_kind_with_only_indicators_of_at_least_the_minimum_impact(tmp_path):
    threat = malware(1, [
        ("URL", {"url": "http://b.example/major"}, "Major"), ("URL", {"url": "http://a.example/moderate"}, "Moderate"),
        ("URL", {"url": "http://c.example/minor"}, "Minor"), ("Domain Name", "none.example", "None"),
        ("IPv4 Address", "192.0.2.1", "Major"), ("Email", "drop@example.org", "Minor"),
    ], executableSet=[{"md5Hex": "A" * 32, "sha256Hex": "b" * 64, "severityLevel": "Moderate"}])

    assert sync(tmp_path, [threat]) == {
        "url": ["http://a.example/moderate", "http://b.example/major"], "domain": [], "ipv4": ["192.0.2.1"],
        "email": [], "md5": ["a" * 32], "sha256": ["b" * 64],
    }
    assert sync(tmp_path, min_impact="minor")["email"] == ["drop@example.org"]
    assert sync(tmp_path, min_impact="major", kinds="url")["url"] == ["http://b.example/major"]


def test_indicators_without_an_impact_are_listed_only_with_min_impact_none(tmp_path):
    phish = parse_threat({
        "id": 9, "threatType": "PHISH", "title": "Phish", "firstDate": int(time.time() * 1000),
        "lastDate": int(time.time() * 1000), "phishingURL_1": {"url": "https://login.example/x"},
        "kits": [{"files": [{"emails": [{"email": "thief@example.net"}]}]}],
    })

    assert sync(tmp_path, [phish], min_impact="major")["email"] == []
    assert sync(tmp_path, min_impact="none")["email"] == ["thief@example.net"]


def test_withdrawal_removes_values_unless_a_live_threat_still_lists_them(tmp_path):
    first = malware(1, [("Domain Name", "shared.example", "Major"), ("Domain Name", "only-first.example", "Major")])
    second = malware(2, [("Domain Name", "shared.example", "Major")])
    sync(tmp_path, [first, second])

    assert sync(tmp_path, withdrawn=[first.ref])["domain"] == ["shared.example"]


def test_csv_lists_the_context_of_the_strongest_then_newest_threat(tmp_path):
    old = malware(1, [("Domain Name", "shared.example", "Major")], last_published=1_900_000_000_000)
    new = malware(2, [("Domain Name", "shared.example", "Moderate")], last_published=1_900_000_900_000)
    newest = malware(3, [("Domain Name", "other.example", "Major")], last_published=1_900_001_000_000)

    sync(tmp_path, [old, new, newest], csv="True", kinds="domain")

    with open(tmp_path / "lists" / "domain.csv", newline="") as handle:
        assert list(csv.reader(handle)) == [
            ["value", "impact", "role", "malware_family", "threat_type", "threat_id", "threat_label", "last_published"],
            ["other.example", "Major", "C2", "Qakbot", "malware", "3", "Campaign 3", "2030-03-17T18:03:20Z"],
            ["shared.example", "Major", "C2", "Qakbot", "malware", "1", "Campaign 1", "2030-03-17T17:46:40Z"],
        ]


def test_threats_last_published_before_max_age_days_are_left_out(tmp_path):
    recent = malware(1, [("Domain Name", "recent.example", "Major")])
    forty_days_ago = int((time.time() - 40 * 86400) * 1000)
    stale = malware(2, [("Domain Name", "stale.example", "Major")], last_published=forty_days_ago)

    assert sync(tmp_path, [recent, stale], max_age_days="30")["domain"] == ["recent.example"]
    assert sync(tmp_path, max_age_days="0")["domain"] == ["recent.example", "stale.example"]


def test_url_schemes_can_be_stripped_for_firewalls_that_match_without_them(tmp_path):
    threat = malware(1, [("URL", {"url": "https://x.example/a"}, "Major"),
                         ("URL", {"url": "http://x.example/a"}, "Major")])

    assert sync(tmp_path, [threat], strip_url_scheme="True", kinds="url")["url"] == ["x.example/a"]


def test_urls_without_their_scheme_are_listed_sorted_once_whatever_the_scheme_and_store_order(tmp_path):
    urls = ["http://c.example/", "https://a.example/", "ftp://b.example/", "http://a.example/"]
    sync(tmp_path, [malware(1, [("URL", {"url": url}, "Major") for url in urls])], strip_url_scheme="True", kinds="url")
    with sqlite3.connect(tmp_path / "phishme_intel.sqlite3") as db:  # as a release before the gate stored them
        db.executemany("INSERT INTO indicators VALUES ('malware', 1, 'url', ?, 'Major', 'C2', NULL)", [
            ("HTTPS://B.example/x",), ("hxxp://0.example/",), ("a.example/no-scheme",)])
    db.close()

    found = sync(tmp_path, strip_url_scheme="True", kinds="url", csv="True")

    assert found["url"] == ["0.example/", "a.example/", "b.example/", "b.example/x", "c.example/"]
    with open(tmp_path / "lists" / "url.csv", newline="") as handle:
        assert [row["value"] for row in csv.DictReader(handle)] == found["url"]


def test_values_an_earlier_release_stored_that_are_not_indicators_are_left_out_with_a_debug_line(tmp_path, caplog):
    sync(tmp_path, [malware(1, [("URL", {"url": "http://x.example/ok"}, "Major")])], kinds="url, domain, email")
    with sqlite3.connect(tmp_path / "phishme_intel.sqlite3") as db:  # as a release before the gate stored them
        db.executemany("INSERT INTO indicators VALUES ('malware', 1, ?, ?, 'Major', 'C2', NULL)", [
            ("url", "http://x.example/a b"), ("domain", "*docs.example.net"), ("domain", "*.com"),
            ("email", "<redacted>@x.example"), ("domain", "Upper.Example"),
        ])
    db.close()

    with caplog.at_level(logging.DEBUG, logger="phishme_intel.adapters.blocklists"):
        found = sync(tmp_path, kinds="url, domain, email")

    assert found == {"url": ["http://x.example/ok"], "domain": ["upper.example"], "email": []}
    assert "left out of the url list, not an indicator (control): 'http://x.example/a b'" in caplog.text
    assert "left out of the domain list, not an indicator (wildcard): '*docs.example.net'" in caplog.text


def test_what_an_earlier_release_stored_is_judged_even_when_the_run_delivers_other_threats(tmp_path):
    sync(tmp_path, [malware(1, [("Domain Name", "a.example", "Major")])], kinds="domain")
    with sqlite3.connect(tmp_path / "phishme_intel.sqlite3") as db:  # as a release before the gate stored them
        db.executemany("INSERT INTO indicators VALUES ('malware', 1, 'domain', ?, 'Major', 'C2', NULL)", [
            ("*.com",), ("B.Example",)])
    db.close()

    found = sync(tmp_path, [malware(2, [("Domain Name", "c.example", "Major")])], kinds="domain")

    assert found == {"domain": ["a.example", "b.example", "c.example"]}


def test_values_a_threat_brought_through_another_gate_are_judged_by_the_lists_gate(tmp_path):
    lax = Gate(keep_private_ips=True)
    threat = parse_threat({**malware(1, []).raw, "blockSet": [
        {"blockType": "IPv4 Address", "data_1": address, "impact": "Major", "role": "C2"}
        for address in ("10.0.0.1", "192.0.2.1")]}, gate=lax)

    assert sync(tmp_path, [threat], kinds="ipv4") == {"ipv4": ["192.0.2.1"]}


def test_values_the_gate_canonicalises_out_of_the_stores_order_are_listed_sorted_once(tmp_path):
    sync(tmp_path, [malware(1, [("Domain Name", "c.example", "Minor"), ("Domain Name", "zz.example", "Major")])],
         kinds="domain", csv="True", min_impact="minor")
    with sqlite3.connect(tmp_path / "phishme_intel.sqlite3") as db:  # as a release before the gate stored them
        db.executemany("INSERT INTO indicators VALUES ('malware', 1, 'domain', ?, ?, 'C2', NULL)", [
            ("Upper.Example", "Major"), ("c.example.", "Major"), ("\u00e4.example", "Major"),
        ])
    db.close()

    found = sync(tmp_path, kinds="domain", csv="True", min_impact="minor")

    assert found["domain"] == ["c.example", "upper.example", "xn--4ca.example", "zz.example"]
    with open(tmp_path / "lists" / "domain.csv", newline="") as handle:
        assert [(row["value"], row["impact"]) for row in csv.DictReader(handle)] == [
            ("c.example", "Major"), ("upper.example", "Major"), ("xn--4ca.example", "Major"), ("zz.example", "Major")]


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(tmp_path):
    threat = malware(1, [("Domain Name", "a.example", "Major")], label="=HYPERLINK(\"http://x\",\"y\")")
    sync(tmp_path, [parse_threat({**threat.raw, "blockSet": [
        {"blockType": "Domain Name", "data_1": "a.example", "impact": "Major", "role": "+C2",
         "malwareFamily": {"familyName": "@SUM(1+1)"}},
        {"blockType": "Domain Name", "data_1": "b.example", "impact": "Major", "role": "-2+3",
         "malwareFamily": {"familyName": "=cmd|' /C calc'!A0"}},
    ]})], kinds="domain", csv="True")

    rows = list(csv.DictReader((tmp_path / "lists" / "domain.csv").open()))

    assert [(r["value"], r["role"], r["malware_family"], r["threat_label"]) for r in rows] == [
        ("a.example", "'+C2", "'@SUM(1+1)", "'=HYPERLINK(\"http://x\",\"y\")"),
        ("b.example", "'-2+3", "'=cmd|' /C calc'!A0", "'=HYPERLINK(\"http://x\",\"y\")"),
    ]
    for cell in (r[key] for r in rows for key in r):
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert [neutralised(cell) for cell in ("\tx", "\rx", "a=b", "")] == ["'\tx", "'\rx", "a=b", ""]


def test_subject_lines_are_never_a_list(tmp_path):
    problems = []
    parse_section("integration_blocklists", {"kinds": "domain, subject"}, BlocklistsAdapter.options, problems)
    assert problems == ["[integration_blocklists] kinds: must be a comma-separated list of url, domain, ipv4, email, "
                        "md5, sha1, sha256, sender_ip, sender_email, not 'domain, subject'"]


def test_lists_are_replaced_atomically_and_only_when_their_content_changes(tmp_path):
    sync(tmp_path, [malware(1, [("Domain Name", "a.example", "Major"), ("IPv4 Address", "192.0.2.1", "Major")])])
    before = {name: os.stat(tmp_path / "lists" / name).st_ino for name in ("domain.txt", "ipv4.txt")}

    sync(tmp_path, [malware(2, [("Domain Name", "b.example", "Major")])])

    after = {name: os.stat(tmp_path / "lists" / name).st_ino for name in ("domain.txt", "ipv4.txt")}
    assert after["ipv4.txt"] == before["ipv4.txt"], "unchanged list left alone"
    assert after["domain.txt"] != before["domain.txt"], "changed list replaced by rename"
    assert sorted(os.listdir(tmp_path / "lists")) == [f"{kind}.txt" for kind in sorted(
        ("url", "domain", "ipv4", "email", "md5", "sha256"))]
    assert os.stat(tmp_path / "lists" / "domain.txt").st_mode & 0o777 == 0o644


def test_lists_are_rebuilt_when_a_run_opens_even_with_nothing_new(tmp_path):
    sync(tmp_path, [malware(1, [("Domain Name", "minor.example", "Minor")])], min_impact="major")

    assert sync(tmp_path, min_impact="minor")["domain"] == ["minor.example"]


def test_a_list_whose_path_is_taken_by_a_folder_is_a_clear_error(tmp_path):
    sync(tmp_path, [malware(1, [("Domain Name", "a.example", "Major")])])
    (tmp_path / "lists" / "domain.txt").unlink()
    os.mkdir(tmp_path / "lists" / "domain.txt")

    with pytest.raises(AdapterError, match=f"adapter blocklists: cannot write {tmp_path / 'lists' / 'domain.txt'}"):
        sync(tmp_path, [malware(2, [("Domain Name", "b.example", "Major")])])


def test_bad_settings_are_config_errors(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, integration_blocklists={
        "use": "True", "kinds": "url, fqdn", "min_impact": "high",
    })

    result = run_cli(config, "--check")

    assert result.returncode == 78
    assert "[integration_blocklists] kinds: must be a comma-separated list of url, domain," in result.stderr
    assert "[integration_blocklists] min_impact: must be one of major, moderate, minor, none, not 'high'" in (
        result.stderr)


def test_lists_without_any_store_enabled_are_a_config_error(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url, integration_sqlite={"use": "False"},
                          integration_blocklists={"use": "True"})

    result = run_cli(config, "--check")

    assert result.returncode == 78
    assert ("[integration_blocklists]: is built from the IOC store, but no store is enabled: "
            "enable [integration_sqlite] or [integration_postgresql]") in result.stderr


def test_lists_opened_without_a_store_are_an_adapter_error_naming_them(tmp_path):
    fanout = Fanout([BlocklistsAdapter(settings(tmp_path, folder="lists"))])
    with pytest.raises(AdapterError, match="adapter blocklists: is built from the IOC store, but no store"):
        fanout.open()
    fanout.close()


def test_a_sqlite_path_other_than_the_store_is_ignored_with_a_warning(tmp_path, caplog):
    threat = malware(1, [("Domain Name", "a.example", "Major")])
    caplog.set_level(logging.WARNING)
    assert sync(tmp_path, [threat], sqlite_path="phishme_intel.sqlite3") == sync(tmp_path, [threat])
    assert caplog.messages == []

    assert sync(tmp_path, [threat], sqlite_path="elsewhere.sqlite3")["domain"] == ["a.example"]

    assert caplog.messages == [
        f"[integration_blocklists] sqlite_path {tmp_path / 'elsewhere.sqlite3'} is not needed and ignored: "
        f"the lists are built from the SQLite store {tmp_path / 'phishme_intel.sqlite3'}"
    ]


@pytest.mark.parametrize("raw", [
    {"csv": "True"},
    {"csv": "True", "strip_url_scheme": "True", "min_impact": "none"},
    {"strip_url_scheme": "True", "formats": "plain, unbound, nftables, ipset, squid"},
], ids=["csv", "csv-stripped", "values-stripped"])
def test_the_lists_from_the_postgresql_store_are_those_from_the_sqlite_store(tmp_path, pg_store, raw):
    threats = sample_threats(malware=8, phish=4)
    from_sqlite = sync(tmp_path, threats, withdrawn=[threats[0].ref], kinds=EVERY_LINE_KIND, **raw)
    written = files(tmp_path / "lists")
    fanout = Fanout([
        BlocklistsAdapter(settings(tmp_path, folder="pg-lists", kinds=EVERY_LINE_KIND, **raw)),
        pg_store.adapter(),
    ])
    fanout.open()
    try:
        fanout.deliver(threats)
        fanout.withdraw([threats[0].ref])
        fanout.commit()
    finally:
        fanout.close()
    assert lists(tmp_path / "pg-lists") == from_sqlite
    assert files(tmp_path / "pg-lists") == written


def test_a_run_lists_what_the_store_holds_even_when_the_store_section_is_absent(tmp_path, simulator, dataset):
    config = write_config(tmp_path, simulator.url, integration_blocklists={"use": "True", "min_impact": "moderate"})
    updater = ConfigUpdater()
    updater.read(config)
    updater.remove_section("integration_sqlite")
    config.write_text(str(updater))
    assert not ConfigUpdater().read_string(config.read_text()).has_section("integration_sqlite")

    assert run_cli(config).returncode == 0
    first = lists(tmp_path / "blocklists")
    assert first == expected_lists(tmp_path / "phishme_intel.sqlite3") and first["url"]
    dataset.delete(20)

    assert run_cli(config).returncode == 0

    second = lists(tmp_path / "blocklists")
    assert second == expected_lists(tmp_path / "phishme_intel.sqlite3") != first


def expected_lists(database):
    """What the lists must hold by default, computed straight from the store."""
    with sqlite3.connect(database) as db:
        return {
            kind: [value for (value,) in db.execute(
                "SELECT DISTINCT value FROM indicators WHERE kind = ? AND impact IN ('Major', 'Moderate') "
                "ORDER BY value", (kind,)) if " " not in value]
            for kind in sorted(("url", "domain", "ipv4", "email", "md5", "sha256"))
        }
