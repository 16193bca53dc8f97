"""Plausible threat documents, as the Cofense Intelligence API serves them (see docs/api.rst).

A threat's content is a pure function of (seed, kind, id, dates), so the dataset only keeps
ids and dates and renders documents when asked. Every value is fake: domains under reserved
names (``example.com``, ``.test``, ``.example``), IPs in the TEST-NET ranges, random hashes.
A small fraction of threats carries the messy values real answers have (wildcard domains,
``<redacted>``, odd URL encodings, executables with only an MD5, lists empty, missing or null).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

_PORTAL = "https://www.threathq.com"
T = TypeVar("T")

FEEDS = [
    {"id": 23, "displayName": "Cofense", "permissions": {"READ": True, "WRITE": False, "OWNER": False}},
    {
        "id": 61,
        "displayName": "Cofense Brand Intelligence",
        "permissions": {"READ": True, "WRITE": False, "OWNER": False},
    },
]

_FAMILIES = [
    "Emotet",
    "Agent Tesla",
    "FormBook",
    "Qakbot",
    "Remcos RAT",
    "Dridex",
    "Lokibot",
    "IcedID",
    "Ursnif",
]
_MECHANISMS = [
    "OfficeMacro",
    "CVE-2017-11882",
    "ZIP Archive",
    "HTML Application",
    "JavaScript Dropper",
    "ISO Image",
]
_BRANDS = ["Microsoft", "DHL", "Adobe", "DocuSign", "Amazon", "Wells Fargo", "FedEx", "Netflix", "None"]
_THEMES = ["Invoice", "Purchase Order", "Shipping Notice", "Payment", "Voicemail", "Tax Refund", "Resume"]
_ROLES = {
    "C2": "Command and control location used by malware",
    "Payload": "Location from which a payload is obtained",
    "InfURL": "Infection URL delivering the first stage",
    "Exfil": "Location to which stolen data is sent",
    "IDinfo": "Service used to identify the infected host",
    "PaySite": "Ransom payment site",
}
_ROLE_NAMES = tuple(_ROLES)
_INFRA = ["Compromised", "Attacker Owned", "Free Hosting", "Legitimate Service", "Bulletproof Hosting"]
_IMPACTS = ["Major", "Moderate", "Minor", "None"]
_LANGUAGES = [("en", "English"), ("de", "German"), ("es", "Spanish"), ("fr", "French"), ("ja", "Japanese")]
_COUNTRIES = [
    ("US", "United States"),
    ("DE", "Germany"),
    ("NL", "Netherlands"),
    ("RU", "Russia"),
    ("BR", "Brazil"),
]
_WORDS = [
    "secure",
    "login",
    "update",
    "invoice",
    "cloud",
    "portal",
    "mail",
    "docs",
    "account",
    "verify",
    "files",
]
_ZONES = ["example.com", "example.net", "example.org", "test", "example"]
_EXTENSIONS = {
    "doc": "Microsoft Word Document",
    "xls": "Microsoft Excel Sheet",
    "exe": "Windows Executable",
    "js": "JavaScript",
    "zip": "ZIP Archive",
    "hta": "HTML Application",
}
_EXTENSION_NAMES = tuple(_EXTENSIONS)
_VENDORS = [
    "Avira",
    "BitDefender",
    "ClamAV",
    "DrWeb",
    "ESET-NOD32",
    "F-Secure",
    "Fortinet",
    "Ikarus",
    "Kaspersky",
    "McAfee",
    "Sophos",
]
_NAICS = [
    (522110, "Commercial Banking"),
    (621111, "Offices of Physicians"),
    (541511, "Custom Computer Programming"),
]
_LISTS = [
    "campaignBrandSet",
    "deliveryMechanisms",
    "executableSet",
    "senderIpSet",
    "senderEmailSet",
    "subjectSet",
    "domainSet",
    "spamUrlSet",
    "extractedStringSet",
    "senderNameSet",
]


Span = tuple[int, int]


@dataclass(frozen=True)
class Profile:
    """How large the rendered threats are: each list's length is drawn from its (low, high) span.

    ``detections`` is the number of ``vendorDetections`` per executable; ``senders`` spans
    ``senderIpSet``, ``senderEmailSet``, ``domainSet``, ``spamUrlSet`` and ``senderNameSet``;
    ``urls`` spans a phish's extra ``reportedURLs_1`` and its ``actionURLs_1``. ``odd_lists``
    is the share of threats with one list empty, null or missing.
    """

    name: str
    blocks: Span
    executables: Span
    detections: int
    senders: Span
    subjects: Span
    urls: Span
    components: Span
    kit_emails: Span
    odd_lists: float


#: The original, small threats (5.7 KB of JSON and 15 indicators per threat over W1's mix): quick tests.
COMPACT = Profile("compact", blocks=(2, 12), executables=(0, 3), detections=0, senders=(0, 3), subjects=(1, 3),
                  urls=(0, 2), components=(0, 3), kit_emails=(0, 2), odd_lists=0.06)
#: Threats shaped like the vendor's (API.md): a full ``blockSet``, executables with 18 vendor
#: detections; 9.6 KB of JSON and 22 indicators per threat over W1's mix (docs/performance.rst).
#: Messy values, but no null or missing list: phishme-intelligence 4.8, which the benchmark
#: runs beside the sync, ends its run at the first one.
REALISTIC = Profile("realistic", blocks=(7, 15), executables=(1, 3), detections=18, senders=(1, 4),
                    subjects=(1, 4), urls=(1, 4), components=(2, 6), kit_emails=(1, 3), odd_lists=0)
PROFILES = {profile.name: profile for profile in (COMPACT, REALISTIC)}


def _rng(seed: int, kind: str, threat_id: int) -> random.Random:
    return random.Random(f"{seed}:{kind}:{threat_id}")


def _pick(rng: random.Random, items: Sequence[T]) -> T:
    """``rng.choice``, several times faster (rendering is on the answer's hot path)."""
    return items[int(rng.random() * len(items))]


def _between(rng: random.Random, low: int, high: int) -> int:
    """``rng.randint``, several times faster."""
    return low + int(rng.random() * (high - low + 1))


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _host(rng: random.Random) -> tuple[str, str]:
    """A (host, registered domain) pair under a reserved name."""
    domain = f"{_pick(rng, _WORDS)}-{_pick(rng, _WORDS)}{_between(rng, 1, 999)}.{_pick(rng, _ZONES)}"
    if rng.random() < 0.5:
        return f"{_pick(rng, _WORDS)}.{domain}", domain
    return domain, domain


def _ip(rng: random.Random) -> str:
    return f"{_pick(rng, ['192.0.2', '198.51.100', '203.0.113'])}.{_between(rng, 1, 254)}"


def _url_object(protocol: str, host: str, path: str, query: str, domain: str) -> dict[str, Any]:
    """The API's URL object ``{url, host, path, domain, protocol, query}``."""
    url = f"{protocol}://{host}{path}" + (f"?{query}" if query else "")
    return {
        "url": url,
        "host": host,
        "path": path,
        "domain": domain,
        "protocol": protocol,
        "query": query or None,
    }


def _url(rng: random.Random, messy: bool = False) -> dict[str, Any]:
    host, domain = _host(rng)
    path = f"/{_pick(rng, _WORDS)}/{_pick(rng, _WORDS)}.php"
    query = f"id={_between(rng, 1000, 99999)}" if rng.random() < 0.3 else ""
    if messy:
        odd = rng.randrange(3)
        if odd == 0:
            path = f"/{_pick(rng, _WORDS)}%20%E2%9C%93/doc%2Ffile.php"
        elif odd == 1:
            host = domain = f"bücher-{_pick(rng, _WORDS)}.example"
        else:
            path = f"/<redacted>/{_pick(rng, _WORDS)}.php"
    return _url_object(_pick(rng, ("http", "https")), host, path, query, domain)


def _ip_detail(rng: random.Random, ip: str) -> dict[str, Any]:
    iso, country = _pick(rng, _COUNTRIES)
    return {
        "ip": ip,
        "asn": _between(rng, 1000, 65000),
        "asnOrganization": f"Example Hosting {_between(rng, 1, 99)}",
        "countryIsoCode": iso,
        "countryName": country,
        "latitude": round(rng.uniform(-60, 60), 4),
        "longitude": round(rng.uniform(-150, 150), 4),
    }


def _family(name: str) -> dict[str, str]:
    return {"familyName": name, "description": f"{name} malware family"}


def _block(rng: random.Random, family: dict[str, str], mechanism: str, messy: bool) -> dict[str, Any]:
    block_type = _pick(rng, ["URL", "URL", "Domain Name", "IPv4 Address", "Email"])
    role = _pick(rng, _ROLE_NAMES)
    item: dict[str, Any] = {
        "blockType": block_type,
        "impact": _pick(rng, _IMPACTS),
        "role": role,
        "roleDescription": _ROLES[role],
        "confidence": _between(rng, 0, 100),
        "infrastructureTypeSubclass": {"description": _pick(rng, _INFRA)},
    }
    if block_type == "URL":
        item["data_1"] = _url(rng, messy)
        item["data"] = item["data_1"]["url"]
    elif block_type == "Domain Name":
        domain = _host(rng)[0]
        item["data"] = item["data_1"] = f"*{domain}" if messy else domain
    elif block_type == "IPv4 Address":
        item["data"] = item["data_1"] = _ip(rng)
        item["ipDetail"] = _ip_detail(rng, item["data"])
    else:
        local = "<redacted>" if messy else f"{_pick(rng, _WORDS)}.{_between(rng, 1, 99)}"
        item["data"] = item["data_1"] = f"{local}@{_host(rng)[1]}"
    if rng.random() < 0.8:
        item["malwareFamily"] = family
    else:
        item["deliveryMechanism"] = {"mechanismName": mechanism, "description": f"{mechanism} delivery"}
    return item


def _executable(rng: random.Random, family: dict[str, str], detections: int, entered: int) -> dict[str, Any]:
    ext = _pick(rng, _EXTENSION_NAMES)
    item: dict[str, Any] = {
        "fileName": f"{_pick(rng, _THEMES).replace(' ', '_')}_{_between(rng, 1, 9999)}.{ext}",
        "fileNameExtension": ext,
        "type": _pick(rng, ["Attachment", "Download", "Drop"]),
        "md5Hex": _hex(rng, 128),
        "severityLevel": _pick(rng, _IMPACTS[:3]),
        "executableSubtype": {"description": _EXTENSIONS[ext]},
        "dateEntered": entered,
        "malwareFamily": family,
    }
    if rng.random() < 0.9:
        item.update(
            sha1Hex=_hex(rng, 160),
            sha224Hex=_hex(rng, 224),
            sha256Hex=_hex(rng, 256),
            sha384Hex=_hex(rng, 384),
            sha512Hex=_hex(rng, 512),
            ssdeep=f"{_pick(rng, [96, 192, 384])}:{_hex(rng, 96)}:{_hex(rng, 64)}",
        )
    if detections:
        item["vendorDetections"] = [
            {"detected": rng.random() < 0.6, "threatVendorName": _vendor(i)} for i in range(detections)
        ]
    return item


def _vendor(index: int) -> str:
    name = _VENDORS[index % len(_VENDORS)]
    return name if index < len(_VENDORS) else f"{name}-{index // len(_VENDORS)}"


def _counted(rng: random.Random, key: str, make: Callable[[], Any], span: Span) -> list[dict[str, Any]]:
    return [{key: make(), "totalCount": _between(rng, 1, 500)} for _ in range(_between(rng, *span))]


def render_malware(seed: int, threat_id: int, first: int, last: int, profile: Profile) -> dict[str, Any]:
    """The malware threat ``threat_id``, first and last published at ``first``/``last`` (ms), sized by ``profile``."""
    rng = _rng(seed, "malware", threat_id)
    family = _family(_pick(rng, _FAMILIES))
    mechanism = _pick(rng, _MECHANISMS)
    brand, theme = _pick(rng, _BRANDS), _pick(rng, _THEMES)
    messy_blocks, odd_list = rng.random() < 0.1, rng.random() < profile.odd_lists
    iso, language = _pick(rng, _LANGUAGES)
    summary = f"{theme}-themed emails impersonating {brand} deliver {family['familyName']} via {mechanism}."
    threat: dict[str, Any] = {
        "id": threat_id,
        "threatType": "MALWARE",
        "label": f"{theme} - {family['familyName']}",
        "executiveSummary": None if rng.random() < 0.1 else summary,
        "firstPublished": first,
        "lastPublished": last,
        "threatDetailURL": f"{_PORTAL}/p42/search/default?m={threat_id}",
        "reportURL": f"{_PORTAL}/api/l/activethreatreport/{threat_id}/html",
        "apiReportURL": f"{_PORTAL}/apiv1/t3/malware/{threat_id}/html",
        "hasReport": True,
        "campaignBrandSet": [
            {"brand": {"id": _BRANDS.index(brand) + 1, "text": brand}, "totalCount": _between(rng, 1, 99)}
        ],
        "malwareFamilySet": [family],
        "deliveryMechanisms": [{"mechanismName": mechanism, "description": f"{mechanism} delivery"}],
        "blockSet": [
            _block(rng, family, mechanism, messy_blocks and rng.random() < 0.4)
            for _ in range(_between(rng, *profile.blocks))
        ],
        "executableSet": [
            _executable(rng, family, profile.detections, first) for _ in range(_between(rng, *profile.executables))
        ],
        "senderIpSet": _counted(rng, "ip", lambda: _ip(rng), profile.senders),
        "senderEmailSet": _counted(
            rng, "senderEmail", lambda: f"{_pick(rng, _WORDS)}@{_host(rng)[1]}", profile.senders
        ),
        "subjectSet": _counted(rng, "subject", lambda: f"{theme} #{_between(rng, 1000, 9999)}", profile.subjects),
        "domainSet": _counted(rng, "domain", lambda: _host(rng)[1], profile.senders),
        "spamUrlSet": _counted(rng, "url_1", lambda: _url(rng), profile.senders),
        "feeds": [FEEDS[0]],
        "campaignLanguageSet": [{"languageDefinition": {"isoCode": iso, "name": language}}],
        "extractedStringSet": [
            {"data": f"{family['familyName'].lower()}_{_hex(rng, 32)}", "malwareFamily": family}
        ],
        "senderNameSet": _counted(
            rng, "name", lambda: f"{brand} {_pick(rng, ['Support', 'Billing', 'Team'])}", profile.senders
        ),
        "naicsCodes": [
            {"naicsCode": code, "description": text} for code, text in rng.sample(_NAICS, _between(rng, 0, 2))
        ],
        "relatedSearchTags": [{"tagName": theme.lower()}],
    }
    if odd_list:
        _mess_up_list(rng, threat)
    return threat


def _mess_up_list(rng: random.Random, threat: dict[str, Any]) -> None:
    name = _pick(rng, _LISTS)
    odd = rng.randrange(3)
    if odd == 0:
        threat[name] = []
    elif odd == 1:
        threat[name] = None
    else:
        del threat[name]


def render_phish(seed: int, threat_id: int, first: int, last: int, profile: Profile) -> dict[str, Any]:
    """The phish threat ``threat_id``, first and last seen at ``first``/``last`` (ms), sized by ``profile``."""
    rng = _rng(seed, "phish", threat_id)
    brand = _pick(rng, _BRANDS[:-1])
    iso, language = _pick(rng, _LANGUAGES)
    phishing = _url(rng, rng.random() < 0.1)
    ip = _ip(rng)
    kit_emails = [
        {
            "email": f"{_pick(rng, _WORDS)}{_between(rng, 1, 99)}@{_host(rng)[1]}",
            "obfuscationType": _pick(rng, ["NONE", "BASE64", "REVERSED"]),
        }
        for _ in range(_between(rng, *profile.kit_emails))
    ]
    kit = {
        "kitName": f"{brand.lower().replace(' ', '')}_kit_{_between(rng, 1, 50)}.zip",
        "fileSize": _between(rng, 10_000, 9_000_000),
        "md5": _hex(rng, 128),
        "sha1": _hex(rng, 160),
        "sha256": _hex(rng, 256),
        "files": [
            {
                "fileName": "send.php",
                "size": _between(rng, 200, 9000),
                "path": f"{brand.lower()}/send.php",
                "md5": _hex(rng, 128),
                "emails": kit_emails,
            }
        ],
    }
    threat: dict[str, Any] = {
        "id": threat_id,
        "threatType": "PHISH",
        "title": f"{brand} Credential Phishing",
        "language": {"isoCode": iso, "name": language},
        "firstDate": first,
        "lastDate": last,
        "confirmedDate": min(first + _between(rng, 0, 6 * 3_600_000), last),
        "threatDetailURL": f"{_PORTAL}/p42/search/default?p={threat_id}",
        "brands": [{"id": _BRANDS.index(brand) + 1, "text": brand}],
        "ipDetail": _ip_detail(rng, ip),
        "phishingURL_1": phishing,
        "reportedURLs_1": [phishing] + [_url(rng) for _ in range(_between(rng, *profile.urls))],
        "actionURLs_1": [_url(rng) for _ in range(_between(rng, *profile.urls))],
        "screenshot": {
            "url_1": _url_object(
                "https", "www.threathq.com", f"/apiv1/ss/{threat_id}.png", "", "threathq.com"
            )
        },
        "webComponents": [{"resourceURL": _url(rng)} for _ in range(_between(rng, *profile.components))],
        "kits": [kit] if rng.random() < 0.5 else [],
    }
    if rng.random() < profile.odd_lists * 5 / 6:
        threat[_pick(rng, ["reportedURLs_1", "actionURLs_1", "webComponents", "kits"])] = None
    return threat
