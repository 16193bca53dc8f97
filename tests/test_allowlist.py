"""Allow-listing: the allowlist file and MISP's warning lists (phishme_intel.models.allowlist).

Allow-listed indicators stay in the SQLite store, reach no other adapter, and are counted
in the status file and logged once per run; every entry goes through the gate, so a public
suffix can never allow-list everything.
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from support import run_cli, write_config

from phishme_intel.models import Gate, parse_threat
from phishme_intel.models.allowlist import DEFAULT_WARNINGLISTS, Allowlist, warninglist_entries
from phishme_intel.simulator import Dataset, Simulator

MALWARE = {"threatType": "MALWARE", "id": 1, "firstPublished": 1_700_000_000_000, "lastPublished": 1_700_000_000_000}


@pytest.mark.parametrize(("entry", "covered", "not_covered"), [
    ("example.com", [("domain", "example.com"), ("domain", "a.b.example.com"), ("domain", "*.example.com"),
                     ("url", "https://www.example.com/x"), ("email", "boss@example.com"),
                     ("sender_email", "x@mail.example.com")],
     [("domain", "badexample.com"), ("domain", "example.com.evil.example"), ("url", "http://evil.example/example.com"),
      ("email", "example.com@evil.example")]),
    ("*.Bücher.example", [("domain", "xn--bcher-kva.example"), ("url", "http://a.xn--bcher-kva.example/")],
     [("domain", "example")]),
    ("192.0.2.0/24", [("ipv4", "192.0.2.77"), ("sender_ip", "192.0.2.1"), ("url", "http://192.0.2.9:8080/a")],
     [("ipv4", "192.0.3.1"), ("url", "http://198.51.100.1/")]),
    ("203.0.113.5", [("ipv4", "203.0.113.5")], [("ipv4", "203.0.113.6")]),
    ("D41D8CD98F00B204E9800998ECF8427E", [("md5", "d41d8cd98f00b204e9800998ecf8427e")],
     [("md5", "d41d8cd98f00b204e9800998ecf8427f")]),
    ("hxxp://evil[.]example/landing", [("url", "http://evil.example/landing")],
     [("url", "http://evil.example/landing2"), ("domain", "evil.example")]),
])
def test_an_entry_covers_what_it_names_and_nothing_else(entry, covered, not_covered):
    allowlist = Allowlist([entry])

    assert allowlist.rejected == []
    assert [value for kind, value in covered if not allowlist.covers(kind, value)] == []
    assert [value for kind, value in not_covered if allowlist.covers(kind, value)] == []


def test_address_blocks_that_overlap_or_touch_cover_exactly_their_addresses():
    allowlist = Allowlist(["198.51.100.0/25", "198.51.100.128/26", "198.51.100.64/26", "203.0.113.7", "10.0.0.0/8",
                           "10.20.0.0/16", "0.0.0.0/32"])
    covered = ["198.51.100.0", "198.51.100.191", "203.0.113.7", "10.0.0.0", "10.20.255.255", "10.255.255.255",
               "0.0.0.0"]
    not_covered = ["198.51.99.255", "198.51.100.192", "203.0.113.6", "203.0.113.8", "9.255.255.255", "11.0.0.0",
                   "0.0.0.1", "255.255.255.255"]

    assert [address for address in covered if not allowlist.covers("ipv4", address)] == []
    assert [address for address in not_covered if allowlist.covers("ipv4", address)] == []
    allowlist.add("198.51.100.192/26")
    assert allowlist.covers("sender_ip", "198.51.100.255") and not allowlist.covers("ipv4", "198.51.101.0")


@pytest.mark.parametrize("entry", ["com", "*.com", "co.uk", "*", "<redacted>.example", "300.1.1.1/8", "10.0.0.0/33",
                                   "not a value"])
def test_an_entry_that_would_allow_list_a_public_suffix_or_is_not_a_value_is_refused(entry):
    allowlist = Allowlist([entry])
    assert allowlist.rejected == [entry] and len(allowlist) == 0
    assert not allowlist.covers("domain", "anything.com")


def test_allow_listed_indicators_are_marked_and_left_out_of_what_adapters_emit():
    gate = Gate(allowlist=Allowlist(["good.example", "198.51.100.0/24"]))
    threat = parse_threat({**MALWARE, "blockSet": [
        {"blockType": "Domain Name", "data_1": "cdn.good.example", "impact": "Major"},
        {"blockType": "URL", "data_1": {"url": "http://good.example/x"}, "impact": "Major"},
        {"blockType": "IPv4 Address", "data_1": "198.51.100.7", "impact": "Major"},
        {"blockType": "Domain Name", "data_1": "evil.example", "impact": "Major"},
    ]}, gate=gate)

    assert [(i.value, i.allowlisted) for i in threat.indicators] == [
        ("cdn.good.example", True), ("http://good.example/x", True), ("198.51.100.7", True), ("evil.example", False)]
    assert [i.value for i in threat.emitted_indicators] == ["evil.example"]


def test_misp_warning_lists_cover_top_sites_public_resolvers_cdns_and_empty_file_hashes():
    allowlist = Allowlist(warninglist_entries(DEFAULT_WARNINGLISTS))

    for kind, value in [("domain", "www.google.com"), ("url", "https://login.microsoftonline.com/x"),
                        ("ipv4", "8.8.8.8"), ("ipv4", "1.1.1.1"), ("ipv4", "104.16.0.1"),
                        ("md5", "d41d8cd98f00b204e9800998ecf8427e")]:
        assert allowlist.covers(kind, value), (kind, value)
    for kind, value in [("domain", "evil.example"), ("ipv4", "203.0.113.5"), ("md5", "0" * 32)]:
        assert not allowlist.covers(kind, value), (kind, value)


def test_a_bad_allowlist_line_or_an_unknown_warning_list_is_a_config_error_naming_it(tmp_path):
    (tmp_path / "allow.txt").write_text("# benign\ngood.example\ncom\n\n10.0.0.0/8  # ours\n*docs.example\n")
    config = write_config(tmp_path, "http://127.0.0.1:9/apiv1", indicators={
        "allowlist_file": "allow.txt", "warninglists": "True", "warninglist_names": "tranco10k, no-such-list"})

    result = run_cli(config, "--check")

    assert result.returncode == 78
    assert (f"[indicators] allowlist_file: line 3 ('com'), line 6 ('*docs.example') of {tmp_path}/allow.txt: not a "
            "domain") in result.stderr
    assert "[indicators] warninglist_names: no MISP warning list named no-such-list in " in result.stderr


def test_allow_listed_values_stay_in_the_store_reach_no_other_adapter_and_are_counted_and_logged_once(tmp_path):
    dataset = Dataset(seed=5, malware=40, phish=0, days=3)
    threats = [parse_threat(dataset.threat(kind, tid)) for kind, tid in sorted(dataset.live_ids())]
    domains = sorted({i.value for t in threats for i in t.indicators if i.kind == "domain"})
    ips = sorted({i.value for t in threats for i in t.indicators if i.kind in ("ipv4", "sender_ip")})
    chosen_domain, chosen_ip = domains[0], ips[0]
    expected = sum(1 for t in threats for i in t.indicators
                   if (i.kind == "domain" and i.value == chosen_domain) or i.value == chosen_ip)
    (tmp_path / "allow.txt").write_text(f"{chosen_domain}\n{chosen_ip}/32\n")
    with Simulator(dataset, user="analyst", password="pw-Zq9%s3cr3t&x") as simulator:
        config = write_config(
            tmp_path, simulator.url, indicators={"allowlist_file": "allow.txt"},
            integration_blocklists={"use": "True", "min_impact": "none", "kinds": "domain, ipv4, sender_ip"},
            integration_stix2={"use": "True", "folder": "stix"},
            integration_cef_syslog={"use": "True", "transport": "file", "file": "cef.log"},
        )
        result = run_cli(config)

    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "phishme_intel.sqlite3") as db:
        stored = {value for (value,) in db.execute("SELECT value FROM indicators")}
    db.close()
    assert {chosen_domain, chosen_ip} <= stored
    emitted = [(tmp_path / "blocklists" / name).read_text() for name in ("domain.txt", "ipv4.txt", "sender_ip.txt")]
    emitted += [path.read_text() for path in (tmp_path / "stix").glob("*.json")]
    emitted.append((tmp_path / "cef.log").read_text())
    named = re.compile(rf"(?<![\w.-]){re.escape(chosen_ip)}(?![\w-])|(?<![\w-]){re.escape(chosen_domain)}(?![\w-])")
    assert [named.findall(text) for text in emitted] == [[]] * len(emitted)
    status = json.loads((tmp_path / "phishme_intel.status.json").read_text())
    assert sum(status["last_run"]["allowlisted_indicators"].values()) == expected > 0
    log = (tmp_path / "phishme_intel.log").read_text()
    assert log.count(f"allow-listed, emitted by no adapter: domain {chosen_domain} ") == 1
