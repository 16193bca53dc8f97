"""Bad input: a corpus of hostile and messy values through the real CLI, every adapter on.

The simulator serves only the corpus threats (the hostile values beside good ones, in a
malware and a phish threat). One run with the SQLite store, JSON files, blocklists in every
format with CSV, CEF to a file, STIX bundles and Splunk HEC indicator events (a local
collector) must: put none of the must-nots (a rejected value, a non-canonical value, a
match-everything STIX pattern, an allow-listed value, a CSV cell a spreadsheet would run)
in any output; count the rejected and allow-listed values exactly, per kind and reason; and
still deliver every good value of the same threats. The threat JSON keeps everything as sent.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hec_collector import TOKEN, Collector, serving
from listeners import parse_cef, parse_syslog
from support import PASSWORD, USER, run_cli, write_config
from test_blocklist_formats import needs

from phishme_intel.adapters import _blocklist_formats as formats
from phishme_intel.models.indicators import verdict
from phishme_intel.simulator import Dataset, Simulator

NOW = int(time.time() * 1000) - 3_600_000
LONG_LABEL = "a" * 64 + ".example.com"
#: (kind, value as sent, expected: a reason, "allowlisted", or the canonical value)
CORPUS: list[tuple[str, str, str]] = [
    ("domain", "*docs.login-docs925.example.net", "wildcard"),
    ("domain", "*", "wildcard"),
    ("domain", "docs.*.example.net", "wildcard"),
    ("domain", "docs.example.net*", "wildcard"),
    ("domain", "com", "public-suffix"),
    ("domain", "*.com", "public-suffix"),
    ("domain", "co.uk", "public-suffix"),
    ("domain", "*.co.uk", "public-suffix"),
    ("domain", "github.io", "public-suffix"),
    ("domain", "<redacted>.example.net", "placeholder"),
    ("domain", LONG_LABEL, "too-long"),
    ("domain", "evil\u0000.example", "control"),
    ("domain", "ev il.example", "control"),
    ("domain", "under_score.example", "syntax"),
    ("domain", "bücher-docs.example", "xn--bcher-docs-9db.example"),
    ("domain", "Evil[.]Corp-Login(.)example", "evil.corp-login.example"),
    ("domain", "*.wild-corp.example", "*.wild-corp.example"),
    ("domain", "Login.Paypa1-Secure.EXAMPLE.com", "login.paypa1-secure.example.com"),
    ("domain", "www.allowed-corp.example", "allowlisted"),
    ("url", "http://*/", "wildcard"),
    ("url", "http://*.com/x", "wildcard"),
    ("url", "http://com/", "public-suffix"),
    ("url", "javascript:alert(1)", "scheme"),
    ("url", "http://127.0.0.1/x", "reserved"),
    ("url", "http://10.0.0.5/x", "private"),
    ("url", "http://x.example/<redacted>/a.php", "placeholder"),
    ("url", "http://x.example/a b", "control"),
    ("url", "hxxp://bad[.]example/gate.php", "http://bad.example/gate.php"),
    ("url", "https://Bücher-Docs.example/Login?A=1", "https://xn--bcher-docs-9db.example/Login?A=1"),
    ("url", "https://allowed-corp.example/landing", "allowlisted"),
    ("ipv4", "0.0.0.0", "reserved"),
    ("ipv4", "127.0.0.1", "reserved"),
    ("ipv4", "169.254.1.1", "reserved"),
    ("ipv4", "224.0.0.1", "reserved"),
    ("ipv4", "255.255.255.255", "reserved"),
    ("ipv4", "10.1.2.3", "private"),
    ("ipv4", "192.168.1.1", "private"),
    ("ipv4", "100.64.0.1", "private"),
    ("ipv4", "01.2.3.4", "syntax"),
    ("ipv4", "203.0.113.50", "203.0.113.50"),
    ("ipv4", "198.51.100[.]60", "allowlisted"),
    ("email", "<redacted>@invoice-mail79.example.net", "placeholder"),
    ("email", "user@*.example.net", "wildcard"),
    ("email", "user@com", "public-suffix"),
    ("email", "Boss[at]Corp-Mail.example", "boss@corp-mail.example"),
]
HASHES = [
    ("md5", "D41D8CD98F00B204E9800998ECF84271", "d41d8cd98f00b204e9800998ecf84271"),
    ("md5", "xyz", "syntax"),
    ("sha1", "1234", "syntax"),
    ("sha256", "AB" * 32, "ab" * 32),
]
SENDERS = [
    ("sender_ip", "127.0.0.1", "reserved"),
    ("sender_ip", "198.51.100.99", "allowlisted"),
    ("sender_email", "<redacted>@sender.example", "placeholder"),
    ("sender_email", "Billing@Sender-Corp.example", "billing@sender-corp.example"),
    ("subject", "=HYPERLINK(\"http://x\",\"y\")", "=HYPERLINK(\"http://x\",\"y\")"),
]
PHISH = [
    ("url", "http://*/", "wildcard"),
    ("domain", "*", "wildcard"),
    ("ipv4", "127.0.0.2", "reserved"),
    ("email", "<redacted>@kit.example", "placeholder"),
    ("url", "https://Phish-Login.example/x", "https://phish-login.example/x"),
    ("domain", "Phish-Login.example", "phish-login.example"),
]
BLOCK_TYPES = {"url": "URL", "domain": "Domain Name", "ipv4": "IPv4 Address", "email": "Email"}
REASONS = {"wildcard", "public-suffix", "placeholder", "too-long", "control", "syntax", "scheme", "reserved",
           "private"}


def malware_threat() -> dict[str, Any]:
    blocks = [{"blockType": BLOCK_TYPES[kind], "impact": "Major", "role": "=C2",
               "malwareFamily": {"familyName": "=HYPERLINK(\"http://evil\",\"x\")"},
               "data_1": {"url": value} if kind == "url" else value} for kind, value, _ in CORPUS]
    hashes = {"md5Hex": HASHES[0][1], "sha256Hex": HASHES[3][1], "severityLevel": "Major", "fileName": "@x.exe"}
    return {
        "threatType": "MALWARE", "id": 8_000_001, "label": "=2+5", "firstPublished": NOW, "lastPublished": NOW,
        "blockSet": blocks,
        "executableSet": [hashes, {"md5Hex": HASHES[1][1], "sha1Hex": HASHES[2][1], "severityLevel": "Major"}],
        "senderIpSet": [{"ip": SENDERS[0][1]}, {"ip": SENDERS[1][1]}],
        "senderEmailSet": [{"senderEmail": SENDERS[2][1]}, {"senderEmail": SENDERS[3][1]}],
        "subjectSet": [{"subject": SENDERS[4][1]}],
    }


def phish_threat() -> dict[str, Any]:
    return {
        "threatType": "PHISH", "id": 8_000_002, "title": "-cmd", "firstDate": NOW, "lastDate": NOW,
        "confirmedDate": NOW, "phishingURL_1": {"url": "http://*/", "host": "*"},
        "actionURLs_1": [{"url": "https://Phish-Login.example/x", "host": "Phish-Login.example"}],
        "ipDetail": {"ip": "127.0.0.2"},
        "kits": [{"kitName": "k", "files": [{"fileName": "f", "emails": [{"email": "<redacted>@kit.example"}]}]}],
    }


class CorpusDataset(Dataset):
    """No generated threats: every search answer is the corpus threats of the window's kind, once per run."""

    def __init__(self) -> None:
        super().__init__(seed=1, malware=0, phish=0, days=2)
        self._served: set[str] = set()
        self._lock = threading.Lock()

    def search_json(self, begin_ms: int, end_ms: int, kind: str, offset: int, limit: int) -> tuple[int, list[bytes]]:
        total, page = super().search_json(begin_ms, end_ms, kind, offset, limit)
        extra = []
        with self._lock:
            for threat in (malware_threat(), phish_threat()):
                wanted = kind in ("all", threat["threatType"].lower())
                if wanted and begin_ms <= NOW <= end_ms and threat["threatType"] not in self._served:
                    self._served.add(threat["threatType"])
                    extra.append(json.dumps(threat).encode())
        return total + len(extra), [*extra, *page]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of one CLI run over the corpus with every adapter on."""
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "allow.txt").write_text("allowed-corp.example\n198.51.100.0/24\n")
    with serving(Collector()) as collector, Simulator(CorpusDataset(), user=USER, password=PASSWORD) as simulator:
        config = write_config(
            folder, simulator.url, pm_api={"init_date": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime(time.time() - 86400))},
            indicators={"allowlist_file": "allow.txt"},
            integration_json_files={"use": "True", "folder": "json", "layout": "flat"},
            integration_blocklists={"use": "True", "min_impact": "none", "csv": "True",
                                    "kinds": "url, domain, ipv4, email, md5, sha1, sha256, sender_ip, sender_email",
                                    "formats": "plain, rpz, unbound, nftables, ipset, squid"},
            integration_cef_syslog={"use": "True", "transport": "file", "file": "cef.log"},
            integration_stix2={"use": "True", "folder": "stix"},
            integration_splunk_hec={"use": "True", "url": collector.url, "token": TOKEN, "indicator_events": "True",
                                    "retry_backoff": "0.01"},
            local_log={"log_level": "debug"},
        )
        result = run_cli(config)
        (folder / "hec.json").write_text(json.dumps([event["event"] for event in collector.events]))
    assert result.returncode == 0, result.stderr
    return folder


def everything() -> list[tuple[str, str, str]]:
    return [*CORPUS, *HASHES, *SENDERS, *PHISH]


def good() -> set[tuple[str, str]]:
    return {(kind, expected) for kind, _, expected in everything() if expected not in REASONS | {"allowlisted"}}


def test_the_rejected_and_allow_listed_values_are_counted_exactly_per_kind_and_reason(run):
    status = json.loads((run / "phishme_intel.status.json").read_text())["last_run"]
    rejected: dict[str, Counter[str]] = {}
    for kind, _, expected in everything():
        if expected in REASONS:
            rejected.setdefault(kind, Counter())[expected] += 1

    assert status["rejected_indicators"] == {kind: dict(sorted(c.items())) for kind, c in sorted(rejected.items())}
    assert status["allowlisted_indicators"] == {"domain": 1, "ipv4": 1, "sender_ip": 1, "url": 1}
    log = (run / "phishme_intel.log").read_text()
    assert "malware 8000001: domain '*docs.login-docs925.example.net' is not an indicator (wildcard)" in log
    assert log.count("allow-listed, emitted by no adapter: url https://allowed-corp.example/landing") == 1


def test_the_store_holds_every_good_and_allow_listed_value_canonical_and_the_threat_json_as_sent(run):
    with sqlite3.connect(run / "phishme_intel.sqlite3") as db:
        stored = set(db.execute("SELECT kind, value FROM indicators"))
        raw = "".join(text for (text,) in db.execute("SELECT json FROM threats"))
    db.close()

    allowlisted = {("domain", "www.allowed-corp.example"), ("url", "https://allowed-corp.example/landing"),
                   ("ipv4", "198.51.100.60"), ("sender_ip", "198.51.100.99")}
    assert stored == good() | allowlisted
    assert "*docs.login-docs925.example.net" in raw and "<redacted>@invoice-mail79.example.net" in raw


def _blocklist_values(run: Path) -> dict[str, list[str]]:
    return {path.stem: path.read_text().splitlines() for path in (run / "blocklists").glob("*.txt")}


def _cef_values(run: Path) -> list[tuple[str, str]]:
    found = []
    for line in (run / "cef.log").read_text().splitlines():
        extensions = parse_cef(parse_syslog(line).message).extensions
        found += [(key, extensions[key]) for key in ("cs4", "dst", "fileHash", "dhost", "cs3") if key in extensions]
    return found


def _stix_patterns(run: Path) -> list[str]:
    return [obj["pattern"] for path in (run / "stix").glob("*.json")
            for obj in json.loads(path.read_text())["objects"] if obj["type"] == "indicator"]


def test_no_output_holds_a_must_not(run):
    sent = {value for _, value, expected in everything() if expected in REASONS | {"allowlisted"}}
    listed = _blocklist_values(run)
    hec = [(e["indicator_type"], e["value"]) for e in json.loads((run / "hec.json").read_text())
           if e["event_type"] == "indicator"]
    cef = _cef_values(run)
    outputs = [value for values in listed.values() for value in values] + [v for _, v in hec] + [v for _, v in cef]

    assert [value for value in outputs if value in sent] == []
    for kind, values in listed.items():
        assert all(verdict(kind, value).value == value for value in values), kind
    assert all(verdict(kind, value).value == value for kind, value in hec)
    for pattern in _stix_patterns(run):
        if " LIKE " in pattern:
            assert pattern == "[domain-name:value LIKE '%.wild-corp.example']"
    banned = ("allowed-corp.example", "198.51.100.60", "198.51.100.99", "<redacted>", "127.0.0.", "*docs")
    for path in [*(run / "blocklists").iterdir(), run / "cef.log", *(run / "stix").glob("*.json")]:
        text = path.read_text()
        assert [word for word in banned if word in text] == [], path.name
    for path in (run / "blocklists").glob("*.csv"):
        for row in csv.reader(path.open()):
            assert [cell for cell in row if cell[:1] in ("=", "+", "-", "@", "\t", "\r")] == [], path.name


def test_the_good_values_of_the_same_threats_still_arrive_everywhere(run):
    listed = _blocklist_values(run)
    kinds = set(listed)
    expected_lists = {(kind, value) for kind, value in good() if kind in kinds}
    assert {(kind, value) for kind, values in listed.items() for value in values} == expected_lists
    hec = {(e["indicator_type"], e["value"]) for e in json.loads((run / "hec.json").read_text())
           if e["event_type"] == "indicator"}
    assert hec == good()
    stix = set(_stix_patterns(run))
    assert "[domain-name:value = 'xn--bcher-docs-9db.example']" in stix
    assert "[url:value = 'https://xn--bcher-docs-9db.example/Login?A=1']" in stix
    assert "[email-message:subject = '=HYPERLINK(\"http://x\",\"y\")']" in stix
    cef = {value for _, value in _cef_values(run)}
    assert {"http://bad.example/gate.php", "203.0.113.50", "boss@corp-mail.example", "ab" * 32,
            "https://phish-login.example/x"} <= cef
    assert (run / "json" / "malware_8000001.json").read_text().count("<redacted>") == 4


def test_the_consumers_accept_the_files_built_from_the_corpus(run, tmp_path):
    folder = run / "blocklists"
    assert re.findall(r'local-zone: "([^"]+)"', (folder / "unbound-local-zones.conf").read_text()) == [
        "evil.corp-login.example.", "login.paypa1-secure.example.com.", "phish-login.example.", "wild-corp.example.",
        "xn--bcher-docs-9db.example."]
    assert formats.squid_dstdomain(["evil.corp-login.example", "login.paypa1-secure.example.com",
                                    "phish-login.example", "*.wild-corp.example",
                                    "xn--bcher-docs-9db.example"]) == (folder / "squid-dstdomain.acl").read_bytes()
    needs("named-checkzone", "unbound-checkconf", "squid")
    zone = subprocess.run(["named-checkzone", formats.RPZ_ORIGIN, str(folder / "phishme_intel.rpz")],
                          capture_output=True, text=True)
    assert zone.returncode == 0, zone.stdout
    config = tmp_path / "squid.conf"
    config.write_text(f'acl d dstdomain "{folder}/squid-dstdomain.acl"\nacl a dst "{folder}/squid-dst.acl"\n'
                      "http_access deny d\nhttp_access deny a\nhttp_access deny all\nhttp_port 127.0.0.1:3128\n")
    parsed = subprocess.run(["squid", "-k", "parse", "-f", str(config)], capture_output=True, text=True)
    assert parsed.returncode == 0 and "WARNING" not in parsed.stderr, parsed.stderr
