"""The indicator gate: each kind's validation and canonical form (phishme_intel.models.indicators).

Property tests (hypothesis): canonicalising twice changes nothing and a canonical value
always passes; IPv4 addresses and hashes against the standard library's reading of them.
Table tests: the values the issue names (wildcards at every position, placeholders, public
suffixes, reserved and private addresses, IDN hosts, defanged forms, over-long labels).
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from publicsuffixlist import PublicSuffixList

from phishme_intel.models import Gate, parse_threat
from phishme_intel.models.indicators import (
    KINDS,
    RejectedIndicator,
    _is_public_suffix,
    _rules,
    candidates,
    canonical,
    judge,
    quick,
    verdict,
)

MALWARE = {"threatType": "MALWARE", "id": 1, "firstPublished": 1_700_000_000_000, "lastPublished": 1_700_000_000_000}
dotted = st.lists(st.sampled_from(["0", "00", "01", "1", "9", "10", "99", "100", "127", "169", "172", "192", "199",
                                   "200", "224", "249", "250", "255", "256", "999", "1000", "", " 1", "١", "-1", "+1",
                                   "0x1"]),
                  min_size=3, max_size=5).map(".".join)
labels = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-üßéçΩ日本*_<>",
                 min_size=1, max_size=12)
names = st.lists(labels, min_size=1, max_size=5).map(".".join) | st.sampled_from(
    ["com", "co.uk", "*.com", "*", "github.io", "example.com", "*.example.com", "*docs.example.net"])
hostile_text = st.text(st.characters(codec="utf-8"), max_size=30)
NOT_PUBLIC = [ipaddress.IPv4Network(block) for block in (
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
)]


def values_of(kind: str, value: str, gate: Gate | None = None) -> list[str]:
    fields = {"sender_ip": ("senderIpSet", "ip"), "sender_email": ("senderEmailSet", "senderEmail")}[kind]
    threat = parse_threat({**MALWARE, fields[0]: [{fields[1]: value, "totalCount": 1}]}, gate=gate or Gate())
    return [i.value for i in threat.indicators if i.kind == kind]


def public_ipv4(value: str) -> list[str]:
    try:
        address = ipaddress.IPv4Address(value.strip())
    except ValueError:
        return []
    return [] if any(address in block for block in NOT_PUBLIC) else [str(address)]


@given(dotted | st.text(max_size=20))
@example("0.0.0.0")
@example("127.0.0.1")
@example("10.1.2.3")
@example("255.255.255.255")
@example("8.8.8.8")
def test_an_ipv4_indicator_is_kept_exactly_when_it_is_a_public_unicast_address_as_the_standard_library_writes_it(value):
    if value.strip():
        assert values_of("sender_ip", value) == public_ipv4(value)


def test_private_ranges_are_kept_only_when_the_site_asks():
    kept = Gate(keep_private_ips=True)
    for value in ("10.1.2.3", "172.16.0.9", "192.168.1.1", "100.64.0.1"):
        assert values_of("sender_ip", value) == []
        assert values_of("sender_ip", value, kept) == [value]
    for value in ("0.0.0.0", "127.0.0.1", "169.254.1.1", "224.0.0.1", "240.0.0.1", "255.255.255.255"):
        assert values_of("sender_ip", value, kept) == []


@given(st.text(alphabet="0123456789abcdefABCDEFgxyz -", max_size=70))
def test_a_hash_is_kept_in_lower_case_when_it_has_its_length_and_only_hex_digits(value):
    threat = parse_threat({**MALWARE, "executableSet": [{"md5Hex": value, "sha1Hex": value, "sha256Hex": value}]})

    kept = {i.kind: i.value for i in threat.indicators}

    for kind, length in (("md5", 32), ("sha1", 40), ("sha256", 64)):
        text = value.strip().lower()
        valid = len(text) == length and all(c in "0123456789abcdef" for c in text)
        assert kept.get(kind) == (text if valid else None)


@given(st.sampled_from(KINDS), names | hostile_text | st.builds("{}://{}/{}".format, st.sampled_from(
    ["http", "HTTPS", "hxxp", "ftp", "javascript"]), names, hostile_text) | st.builds("{}@{}".format, labels, names))
def test_canonicalising_twice_changes_nothing_and_a_canonical_value_always_passes(kind, value):
    first = verdict(kind, value)
    if first.value is not None:
        assert canonical(kind, first.value) == first.value
        assert verdict(kind, first.value, keep_private_ips=True).value == first.value
    else:
        assert first.reason
        with pytest.raises(RejectedIndicator) as rejected:
            canonical(kind, value)
        assert rejected.value.reason == first.reason


@given(st.sampled_from(KINDS), names | hostile_text | st.builds("{}://{}{}".format, st.sampled_from(
    ["http", "https", "ftp", "HTTP", "hxxp"]), names, st.text("/?#az.:@%()[]{}<>\\ü \n", max_size=10))
    | st.builds("{}@{}".format, labels, names))
@example("url", "http://a.123/x")
@example("url", "http://redacted.example/")
@example("email", "\u212a@example.com")
@example("domain", "xn--zz.example")
@example("email", "a@github.io")
def test_the_quick_path_gives_what_the_full_gate_gives(kind, value):
    found = quick(kind, value)
    assert found is None or found == judge(kind, value).value == judge(kind, value, keep_private_ips=True).value


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("url", "https://login.files-verify851.example.com/a/b.php?id=1#x", None),
    ("domain", "files-verify851.example.co.uk", None),
    ("email", "Billing.7@Files-Verify851.example.org", "billing.7@files-verify851.example.org"),
    ("sender_email", "billing@files-verify851.example.org", None),
    ("md5", "d41d8cd98f00b204e9800998ecf8427e", None),
    ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709", None),
    ("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", None),
    ("subject", " Invoice #1234 ", "Invoice #1234"),
])
def test_values_the_vendor_writes_canonical_take_the_quick_path(kind, value, expected):
    assert quick(kind, value) == (expected or value) == canonical(kind, value)


@given(names)
def test_a_canonical_domain_is_lower_case_ldh_labels_below_a_public_suffix(value):
    found = verdict("domain", value).value
    if found is not None:
        name = found.removeprefix("*.")
        assert found == found.lower() and found.isascii() and "*" not in name and len(name) <= 253
        assert all(0 < len(label) <= 63 and label.strip("abcdefghijklmnopqrstuvwxyz0123456789-") == ""
                   for label in name.split("."))
        assert name.count(".") >= 1


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("domain", "Evil.EXAMPLE", "evil.example"),
    ("domain", "evil[.]example(.)com.", "evil.example.com"),
    ("domain", "bücher-docs.example", "xn--bcher-docs-9db.example"),
    ("domain", "BÜCHER.example", "xn--bcher-kva.example"),
    ("domain", "xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("domain", "*.login-docs925.example.net", "*.login-docs925.example.net"),
    ("domain", "*.example.co.uk", "*.example.co.uk"),
    ("url", "hxxp://Evil[.]Example/A?B=%41#Frag", "http://evil.example/A?B=%41#Frag"),
    ("url", "HTTPS://Bücher.example:8443/Pfad", "https://xn--bcher-kva.example:8443/Pfad"),
    ("url", "ftp://user@files.example.org/x", "ftp://user@files.example.org/x"),
    ("url", "http://203.0.113.7/gate.php", "http://203.0.113.7/gate.php"),
    ("email", "Boss[at]Example[.]COM", "boss@example.com"),
    ("sender_email", "x@bücher.example", "x@xn--bcher-kva.example"),
    ("ipv4", "198.51.100[.]4", "198.51.100.4"),
    ("md5", " D41D8CD98F00B204E9800998ECF8427E ", "d41d8cd98f00b204e9800998ecf8427e"),
    ("subject", " =HYPERLINK(\"x\") ", "=HYPERLINK(\"x\")"),
])
def test_valid_values_take_their_one_canonical_form(kind, value, expected):
    assert canonical(kind, value) == expected


@pytest.mark.parametrize(("kind", "value", "reason"), [
    ("domain", "*docs.login-docs925.example.net", "wildcard"),
    ("domain", "docs.*.example.net", "wildcard"),
    ("domain", "docs.example.net*", "wildcard"),
    ("domain", "*.*.example.net", "wildcard"),
    ("domain", "*", "wildcard"),
    ("domain", "*.com", "public-suffix"),
    ("domain", "com", "public-suffix"),
    ("domain", "co.uk", "public-suffix"),
    ("domain", "*.co.uk", "public-suffix"),
    ("domain", "github.io", "public-suffix"),
    ("domain", "<redacted>.example.net", "placeholder"),
    ("domain", "REDACTED.example.net", "placeholder"),
    ("domain", "a" * 64 + ".example.com", "too-long"),
    ("domain", ".".join(["a" * 60] * 5) + ".com", "too-long"),
    ("domain", "ev il.example", "control"),
    ("domain", "evil\x00.example", "control"),
    ("domain", "under_score.example", "syntax"),
    ("domain", "-dash.example", "syntax"),
    ("domain", "xn--zz.example", "syntax"),
    ("domain", "203.0.113.7", "syntax"),
    ("url", "http://*/", "wildcard"),
    ("url", "http://*.example.com/x", "wildcard"),
    ("url", "http://com/", "public-suffix"),
    ("url", "javascript:alert(1)", "scheme"),
    ("url", "file:///etc/passwd", "scheme"),
    ("url", "evil.example/path", "scheme"),
    ("url", "http://evil.example/<redacted>/a.php", "placeholder"),
    ("url", "http://127.0.0.1/x", "reserved"),
    ("url", "http://10.0.0.1/x", "private"),
    ("url", "http://[::1]/", "syntax"),
    ("url", "http://evil.example:99999/", "syntax"),
    ("email", "<redacted>@invoice-mail79.example.net", "placeholder"),
    ("email", "user@*.example.net", "wildcard"),
    ("email", "user@com", "public-suffix"),
    ("email", "no-at-sign.example", "syntax"),
    ("ipv4", "0.0.0.0", "reserved"),
    ("ipv4", "127.0.0.1", "reserved"),
    ("ipv4", "192.168.0.1", "private"),
    ("ipv4", "01.2.3.4", "syntax"),
    ("sha256", "ab" * 31, "syntax"),
    ("md5", "g" * 32, "syntax"),
    ("subject", "   ", "empty"),
])
def test_values_that_block_nothing_or_everything_are_rejected_with_their_reason(kind, value, reason):
    assert verdict(kind, value) == (None, reason)


@pytest.mark.parametrize(("text", "expected"), [
    ("D41D8CD98F00B204E9800998ECF8427E", [("md5", "d41d8cd98f00b204e9800998ecf8427e")]),
    ("evil.example/gate.php", [("url", "http://evil.example/gate.php"), ("url", "https://evil.example/gate.php"),
                               ("domain", "evil.example")]),
    ("hxxps://Evil[.]example/p", [("url", "https://evil.example/p"), ("domain", "evil.example")]),
    ("Boss@Example.com", [("email", "boss@example.com")]),
    ("10.0.0.1", [("ipv4", "10.0.0.1")]),
    ("Bücher.Example", [("domain", "xn--bcher-kva.example")]),
    ("<redacted>", []),
])
def test_an_analysts_free_form_value_becomes_the_pairs_a_lookup_asks_for(text, expected):
    assert candidates(text) == expected


def test_a_threat_keeps_its_json_as_received_and_reports_each_rejected_value_once():
    raw = {**MALWARE, "blockSet": [
        {"blockType": "Domain Name", "data_1": "*docs.example.net", "impact": "Major"},
        {"blockType": "Domain Name", "data_1": "*docs.example.net", "impact": "Minor"},
        {"blockType": "Domain Name", "data_1": "Docs.Example.NET", "impact": "Major"},
        {"blockType": "IPv4 Address", "data_1": "127.0.0.1", "impact": "Major"},
        {"blockType": "URL", "data_1": {"url": "http://Bücher.example/A"}, "impact": "Major"},
    ]}
    threat = parse_threat(raw)

    assert [(i.kind, i.value) for i in threat.indicators] == [
        ("domain", "docs.example.net"), ("url", "http://xn--bcher-kva.example/A")]
    assert [(r.kind, r.value, r.reason) for r in threat.rejected] == [
        ("domain", "*docs.example.net", "wildcard"), ("ipv4", "127.0.0.1", "reserved")]
    assert "*docs.example.net" in threat.json and "Bücher.example" in threat.json


PSL_RULES = sorted(rule.lstrip("!*.") for rule in _rules())
PSL = PublicSuffixList()


@given(st.sampled_from(PSL_RULES), st.lists(st.sampled_from(["a", "www", "city", "b-2", "xn--bcher-kva"]), max_size=2))
def test_the_public_suffix_check_agrees_with_the_publicsuffixlist_package(rule, prefix):
    name = ".".join([*prefix, rule])
    assert _is_public_suffix(name) == (PSL.privatesuffix(name) is None), name
