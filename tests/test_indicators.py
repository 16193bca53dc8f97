"""Indicator values are normalised per kind, or left out when they are not of their kind."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from phishme_intel.models import parse_threat

MALWARE = {"threatType": "MALWARE", "id": 1, "firstPublished": 1_700_000_000_000, "lastPublished": 1_700_000_000_000}
dotted = st.lists(st.sampled_from(["0", "00", "01", "1", "9", "10", "99", "100", "199", "200", "249", "250", "255",
                                   "256", "999", "1000", "", " 1", "١", "-1", "+1", "0x1"]),
                  min_size=3, max_size=5).map(".".join)


def sender_ips(value: str) -> list[str]:
    threat = parse_threat({**MALWARE, "senderIpSet": [{"ip": value, "totalCount": 1}]})
    return [i.value for i in threat.indicators if i.kind == "sender_ip"]


def reference_ipv4(value: str) -> list[str]:
    try:
        return [str(ipaddress.IPv4Address(value.strip()))]
    except ValueError:
        return []


@given(dotted | st.text(max_size=20))
def test_an_ipv4_indicator_is_kept_exactly_when_the_standard_library_reads_it_and_as_it_writes_it(value):
    if value.strip():
        assert sender_ips(value) == reference_ipv4(value)


@given(st.text(alphabet="0123456789abcdefABCDEFgxyz -", max_size=70))
def test_a_hash_is_kept_in_lower_case_when_it_has_its_length_and_only_hex_digits(value):
    threat = parse_threat({**MALWARE, "executableSet": [{"md5Hex": value, "sha1Hex": value, "sha256Hex": value}]})

    kept = {i.kind: i.value for i in threat.indicators}

    for kind, length in (("md5", 32), ("sha1", 40), ("sha256", 64)):
        text = value.strip().lower()
        valid = len(text) == length and all(c in "0123456789abcdef" for c in text)
        assert kept.get(kind) == (text if valid else None)


def test_domains_and_e_mail_addresses_are_lower_case_and_other_kinds_kept_as_sent():
    threat = parse_threat({
        **MALWARE,
        "blockSet": [
            {"blockType": "Domain Name", "data_1": "Evil.EXAMPLE", "impact": "Major", "role": "C2"},
            {"blockType": "Email", "data_1": "Boss@Example.COM", "impact": "Huge"},
            {"blockType": "URL", "data_1": {"url": "http://Evil.example/A"}},
        ],
        "subjectSet": [{"subject": " Your Invoice ", "totalCount": 1}],
    })

    assert [(i.kind, i.value, i.impact, i.role) for i in threat.indicators] == [
        ("domain", "evil.example", "Major", "C2"),
        ("email", "boss@example.com", None, None),
        ("url", "http://Evil.example/A", None, None),
        ("subject", "Your Invoice", None, None),
    ]
