"""STIX 2.1 bundles: the adapter contract in both layouts, the objects a threat becomes, and the
OASIS validator's verdict on everything written."""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path

import pytest
from contract import AdapterContract, DiscardsUncommitted, deliver
from hypothesis import given
from hypothesis import strategies as st
from stix2validator import ValidationOptions, validate_string
from support import run_cli, sample_threats, write_config

from phishme_intel import config as config_module
from phishme_intel.adapters import _stix
from phishme_intel.adapters import _stix_patterns as stix_patterns
from phishme_intel.adapters.stix2 import Stix2Adapter
from phishme_intel.errors import AdapterError, ConfigError
from phishme_intel.models import MALWARE, PHISH, ThreatRef, parse_threat

RAW_MALWARE = {
    "id": 4242,
    "threatType": "MALWARE",
    "label": "Invoice - Emotet",
    "executiveSummary": "Invoice-themed emails deliver Emotet.",
    "firstPublished": 1700000000123,
    "lastPublished": 1700000600456,
    "threatDetailURL": "https://www.threathq.com/p42/search/default?m=4242",
    "reportURL": "https://www.threathq.com/api/l/activethreatreport/4242/html",
    "malwareFamilySet": [{"familyName": "Emotet", "description": "Emotet malware family"}],
    "blockSet": [
        {"blockType": "URL", "impact": "Major", "role": "Payload", "malwareFamily": {"familyName": "Emotet"},
         "data_1": {"url": "http://bad.example.com/it's\\here.php", "host": "bad.example.com"}},
        {"blockType": "Domain Name", "impact": "Moderate", "role": "C2", "malwareFamily": {"familyName": "Emotet"},
         "data_1": "*.evil.example.org"},
        {"blockType": "Domain Name", "impact": "Major", "role": "C2", "data_1": "*glued.example.org"},
        {"blockType": "Domain Name", "impact": "Major", "role": "C2", "data_1": "*.com"},
        {"blockType": "URL", "impact": "Major", "role": "C2", "data_1": {"url": "http://*/"}},
        {"blockType": "IPv4 Address", "impact": "Minor", "role": "C2", "data_1": "192.0.2.10"},
        {"blockType": "Email", "impact": "None", "role": "Exfil", "data_1": "<redacted>@drop.example.net"},
    ],
    "executableSet": [{"fileName": "invoice.doc", "md5Hex": "d41d8cd98f00b204e9800998ecf8427e",
                       "sha256Hex": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                       "malwareFamily": {"familyName": "Emotet"}}],
    "subjectSet": [{"subject": "Your invoice", "totalCount": 3}],
    "senderEmailSet": [{"senderEmail": "billing@sender.example", "totalCount": 3}],
}


def bundles(folder: Path) -> list[dict]:
    """Every bundle a platform watching ``folder`` would ingest, oldest first."""
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def latest_objects(folder: Path) -> dict[str, dict]:
    """Each object's newest version across every bundle, as a STIX consumer keeps them."""
    latest: dict[str, dict] = {}
    for bundle in bundles(folder):
        for obj in bundle["objects"]:
            if obj["id"] not in latest or obj["modified"] > latest[obj["id"]]["modified"]:
                latest[obj["id"]] = obj
    return latest


def report_ref(report: dict) -> ThreatRef:
    external_id = report["external_references"][0]["external_id"]
    return ThreatRef(MALWARE if external_id.startswith("m_") else PHISH, int(external_id[2:]))


def held_in(folder: Path) -> set[ThreatRef]:
    """The threats whose report is current and not revoked."""
    return {
        report_ref(obj) for obj in latest_objects(folder).values() if obj["type"] == "report" and not obj.get("revoked")
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "stix"


@pytest.fixture
def held(folder):
    return lambda: held_in(folder)


@pytest.fixture
def broken_adapter(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    return Stix2Adapter({"folder": str(tmp_path / "a-file" / "stix"), "bundle": "threat"})


class TestOneBundlePerThreat(AdapterContract, DiscardsUncommitted):
    @pytest.fixture
    def make_adapter(self, folder):
        return lambda: Stix2Adapter({"folder": str(folder), "bundle": "threat"})


class TestOneBundlePerRun(AdapterContract, DiscardsUncommitted):
    @pytest.fixture
    def make_adapter(self, folder):
        return lambda: Stix2Adapter({"folder": str(folder), "bundle": "run"})


def test_a_malware_threat_becomes_identity_malware_indicators_relationships_and_report(folder):
    threat = parse_threat(RAW_MALWARE)
    deliver(Stix2Adapter({"folder": str(folder), "bundle": "threat"}), [threat])

    [bundle] = bundles(folder)
    assert (folder / "malware-4242.json").exists()
    by_type: dict[str, list[dict]] = {}
    for obj in bundle["objects"]:
        by_type.setdefault(obj["type"], []).append(obj)
    [identity], [malware], [report] = by_type["identity"], by_type["malware"], by_type["report"]
    assert identity["name"] == "Cofense"
    assert (malware["name"], malware["is_family"]) == ("Emotet", True)
    patterns = {obj["pattern"]: obj.get("confidence") for obj in by_type["indicator"]}
    assert patterns == {
        "[url:value = 'http://bad.example.com/it\\'s\\\\here.php']": 85,
        "[domain-name:value LIKE '%.evil.example.org']": 50,
        "[ipv4-addr:value = '192.0.2.10']": 15,
        "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']": None,
        "[file:hashes.'SHA-256' = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']": None,
        "[email-message:subject = 'Your invoice']": None,
        "[email-message:from_ref.value = 'billing@sender.example']": None,
    }
    indicator_ids = {obj["id"] for obj in by_type["indicator"]}
    linked = {(rel["relationship_type"], rel["target_ref"]) for rel in by_type["relationship"]}
    assert linked == {("indicates", malware["id"])}
    assert len(by_type["relationship"]) == 4  # the URL, the domain and both hashes name Emotet
    assert {rel["source_ref"] for rel in by_type["relationship"]} <= indicator_ids
    assert set(report["object_refs"]) == {obj["id"] for obj in bundle["objects"]} - {report["id"]}
    assert report["name"] == "Invoice - Emotet"
    assert report["published"] == "2023-11-14T22:23:20.456Z"
    assert report["external_references"] == [
        {"source_name": "Cofense Intelligence", "external_id": "m_4242",
         "url": "https://www.threathq.com/p42/search/default?m=4242"},
        {"source_name": "Cofense Active Threat Report",
         "url": "https://www.threathq.com/api/l/activethreatreport/4242/html"},
    ]
    assert all(obj["created_by_ref"] == identity["id"] for obj in bundle["objects"] if obj is not identity)


def test_family_names_differing_in_case_are_one_malware_object_spelled_as_named_last():
    raw = {**RAW_MALWARE, "malwareFamilySet": [{"familyName": "EMOTET"}, {"familyName": "Emotet"}]}
    raw["executableSet"] = [{**RAW_MALWARE["executableSet"][0], "malwareFamily": {"familyName": "emotet"}}]
    objects = _stix.threat_objects(parse_threat(raw), logging.getLogger("test"))

    [malware] = [obj for obj in objects if obj["type"] == "malware"]
    assert malware["name"] == "emotet"  # the hashes' family, named after the URL's and the domain's "Emotet"
    related = [obj for obj in objects if obj["type"] == "relationship"]
    assert len(related) == 4 and {obj["target_ref"] for obj in related} == {malware["id"]}
    described = [obj["description"] for obj in objects if obj["type"] == "indicator"]
    assert sum(text.endswith("; malware family: Emotet") for text in described) == 2
    assert sum(text.endswith("; malware family: emotet") for text in described) == 2


def test_phish_threats_become_reports_with_their_url_domain_and_ip_indicators(folder):
    phish = sample_threats(malware=0, phish=2)
    deliver(Stix2Adapter({"folder": str(folder), "bundle": "threat"}), phish)

    for threat in phish:
        objects = json.loads((folder / f"phish-{threat.id}.json").read_text())["objects"]
        paths = {re.match(r"\[([a-z0-9-]+:[a-z_.]+)", obj["pattern"]).group(1)
                 for obj in objects if obj["type"] == "indicator"}
        assert {"url:value", "domain-name:value", "ipv4-addr:value"} <= paths
        assert "malware" not in {obj["type"] for obj in objects}


def test_replayed_delivery_writes_byte_identical_bundles(folder):
    threats = sample_threats()
    deliver(Stix2Adapter({"folder": str(folder), "bundle": "threat"}), threats)
    first = {path.name: path.read_bytes() for path in folder.glob("*.json")}
    deliver(Stix2Adapter({"folder": str(folder), "bundle": "threat"}), threats)
    assert {path.name: path.read_bytes() for path in folder.glob("*.json")} == first
    assert len(first) == len(threats)


def test_withdrawal_revokes_report_indicators_and_relationships_keeping_their_ids(folder):
    threat = parse_threat(RAW_MALWARE)
    deliver(Stix2Adapter({"folder": str(folder), "bundle": "threat"}), [threat])
    before = {obj["id"]: obj for obj in bundles(folder)[0]["objects"]}
    deliver(Stix2Adapter({"folder": str(folder), "bundle": "threat"}), [], withdrawn=[threat.ref])

    after = {obj["id"]: obj for obj in bundles(folder)[0]["objects"]}
    assert after.keys() == before.keys()
    for obj_id, obj in after.items():
        if obj["type"] in ("report", "indicator", "relationship"):
            assert obj["revoked"] is True
            assert obj["modified"] > before[obj_id]["modified"]
            assert {k: v for k, v in obj.items() if k not in ("revoked", "modified")} == \
                {k: v for k, v in before[obj_id].items() if k != "modified"}
        else:
            assert obj == before[obj_id]


def test_withdrawing_again_leaves_the_first_revocation_untouched(folder):
    threat = parse_threat(RAW_MALWARE)
    deliver(Stix2Adapter({"folder": str(folder), "bundle": "threat"}), [threat], withdrawn=[threat.ref])
    revoked = (folder / "malware-4242.json").read_bytes()
    deliver(Stix2Adapter({"folder": str(folder), "bundle": "threat"}), [], withdrawn=[threat.ref])
    assert (folder / "malware-4242.json").read_bytes() == revoked


def test_each_commit_with_changes_writes_one_run_bundle_of_just_those_changes(folder):
    threats = sample_threats(malware=3, phish=1)
    adapter = Stix2Adapter({"folder": str(folder), "bundle": "run"})
    adapter.open()
    adapter.deliver(threats)
    adapter.commit()
    adapter.commit()
    adapter.withdraw([threats[0].ref])
    adapter.commit()
    adapter.close()

    first, second = bundles(folder)
    assert {report_ref(o) for o in first["objects"] if o["type"] == "report"} == {t.ref for t in threats}
    revoked = [o for o in second["objects"] if o["type"] in ("report", "indicator", "relationship")]
    assert revoked and all(o["revoked"] for o in revoked)
    assert {report_ref(o) for o in revoked if o["type"] == "report"} == {threats[0].ref}
    assert len(list((folder / ".state").glob("*.json"))) == len(threats)


def test_objects_shared_by_threats_appear_once_in_a_run_bundle(folder):
    deliver(Stix2Adapter({"folder": str(folder), "bundle": "run"}), sample_threats(malware=12, phish=2))
    [bundle] = bundles(folder)
    ids = [obj["id"] for obj in bundle["objects"]]
    assert len(ids) == len(set(ids))
    assert [obj["type"] for obj in bundle["objects"]].count("identity") == 1


@pytest.mark.parametrize("layout", ["threat", "run"])
def test_every_bundle_passes_the_oasis_stix2_validator_without_network(folder, monkeypatch, layout):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # any attempt to fetch a schema fails
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    threats = [parse_threat(RAW_MALWARE), *sample_threats(malware=20, phish=3)]
    deliver(Stix2Adapter({"folder": str(folder), "bundle": layout}), threats,
            withdrawn=[threats[0].ref, threats[-1].ref])
    odd = [obj["pattern"] for b in bundles(folder) for obj in b["objects"] if " LIKE " in obj.get("pattern", "")]
    assert odd, "the threat should hold a wildcard domain"

    for path in sorted(folder.glob("*.json")):
        results = validate_string(path.read_text(), ValidationOptions(version="2.1"))
        assert results.is_valid, f"{path.name}: {[str(e) for e in results.errors]}"
        assert results.errors == []
        # expected warnings: UUIDv5 ids (the price of deterministic ids) and portal URLs without a hash
        codes = {re.search(r"\{(\d+)\}", str(warning)).group(1) for warning in results.warnings}
        assert codes <= {"103", "302"}, path.name


def test_a_failed_write_is_an_adapter_error_naming_the_file_and_leaves_no_temporary_file(folder):
    threats = sample_threats(malware=2, phish=0)
    folder.mkdir()
    blocker = folder / f"malware-{threats[1].id}.json"
    blocker.mkdir()  # a folder where the bundle file should go: the rename fails
    with pytest.raises(AdapterError) as failure:
        deliver(Stix2Adapter({"folder": str(folder), "bundle": "threat"}), threats)
    assert failure.value.adapter == "stix2"
    assert str(blocker) in str(failure.value)
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_a_bundle_that_is_not_json_is_reported_when_it_must_be_revoked(folder):
    folder.mkdir()
    (folder / "malware-4242.json").write_text("{ not json")
    with pytest.raises(AdapterError, match=r"malware-4242\.json is not a STIX bundle"):
        deliver(Stix2Adapter({"folder": str(folder), "bundle": "threat"}), [], withdrawn=[ThreatRef(MALWARE, 4242)])


def test_bad_settings_are_config_errors_naming_section_and_key(tmp_path):
    (tmp_path / "a-file").write_text("")
    config = write_config(tmp_path, "http://127.0.0.1:9/apiv1",
                          integration_stix2={"use": "True", "folder": "a-file", "bundle": "weekly"})
    with pytest.raises(ConfigError) as failure:
        config_module.load(str(config))
    assert "[integration_stix2] bundle: must be one of threat, run, not 'weekly'" in failure.value.problems
    assert any(p.startswith("[integration_stix2] folder:") and "is not a folder" in p for p in failure.value.problems)


def test_a_sync_writes_every_threat_and_revokes_what_the_vendor_deletes(tmp_path, simulator, dataset):
    config = write_config(tmp_path, simulator.url, integration_stix2={"use": "True", "folder": "stix"})
    first = run_cli(config)
    assert first.returncode == 0, first.stderr
    live = {ThreatRef(kind, tid) for kind, tid in dataset.live_ids()}
    assert held_in(tmp_path / "stix") == live

    deleted = {ThreatRef(kind, tid) for kind, tid in dataset.delete(4)}
    second = run_cli(config)
    assert second.returncode == 0, second.stderr
    assert held_in(tmp_path / "stix") == live - deleted
    assert len(list((tmp_path / "stix").glob("*.json"))) == len(live)


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("domain", "*.evil.example.org", "[domain-name:value LIKE '%.evil.example.org']"),
    ("domain", "evil.example.org", "[domain-name:value = 'evil.example.org']"),
    ("url", "http://x.example/100%_off?a='b'\\", "[url:value = 'http://x.example/100%_off?a=\\'b\\'\\\\']"),
    ("subject", "50% off_today 'now'", "[email-message:subject = '50% off_today \\'now\\'']"),
    ("domain", "*", None),
    ("domain", "*.com", None),
    ("domain", "*evil.example.org", None),
    ("domain", "com", None),
    ("url", "http://*/", None),
    ("email", "<redacted>@drop.example.net", None),
    ("ipv4", "0.0.0.0", None),
    ("md5", "D41D8CD98F00B204E9800998ECF8427E", None),  # not canonical: the gate writes it in lower case
    ("subject", "", None),
])
def test_patterns_come_from_canonical_values_only_and_like_only_for_a_validated_wildcard(kind, value, expected):
    assert stix_patterns.pattern(kind, value) == expected


def test_the_literal_part_of_a_like_pattern_has_its_percent_and_underscore_escaped():
    assert stix_patterns.like_literal("a%b_c\\d") == "a\\%b\\_c\\\\d"


@given(st.text(max_size=40))
def test_no_value_gives_a_pattern_that_matches_every_value(value):
    for kind in stix_patterns.PATTERN_PATHS:
        made = stix_patterns.pattern(kind, value)
        if made is not None and " LIKE " in made:
            literal = made.split(" LIKE '", 1)[1][:-2]
            assert literal.startswith("%.") and literal.strip("%_.") and "%" not in literal[1:]


def test_bundles_wait_for_the_commit_in_hidden_files_that_a_later_run_removes(folder):
    threats = sample_threats(malware=2, phish=1)
    adapter = Stix2Adapter({"folder": str(folder), "bundle": "threat"})
    adapter.open()
    adapter.deliver(threats)
    adapter._batch.pending(adapter._state_file(threats[0].ref))  # waits until tar wrote them all

    waiting = sorted(path.name for path in folder.iterdir())
    assert waiting == sorted(f".{t.kind}-{t.id}.json.pending" for t in threats)
    assert bundles(folder) == []
    Stix2Adapter({"folder": str(folder), "bundle": "threat"}).open()  # the next run, after this one died

    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("name", ["m_4242", "identity/cofense", "m_1/url/http://bücher.example/ä", ""])
def test_object_ids_are_the_uuid5_of_what_they_stand_for(name):
    assert _stix._id("indicator", name) == f"indicator--{uuid.uuid5(_stix.NAMESPACE, name)}"
