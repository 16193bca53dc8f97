"""STIX 2.1 patterns for canonical indicator values (used by ``adapters/_stix.py`` for ``stix2.py``).

Every pattern compares one object path with one canonical value (see
:mod:`phishme_intel.models.indicators`): ``[domain-name:value = 'evil.example']``. The only
``LIKE`` is for a validated wildcard domain, ``*.`` followed by a registrable domain:
``[domain-name:value LIKE '%.evil.example']``, its literal part with ``%`` and ``_`` escaped,
so it matches the domain's subdomains and nothing else. A value the gate did not pass, and
a pattern whose literal part would be empty (one that matches every value), give no pattern.
"""

from __future__ import annotations

from ..models.indicators import verdict

PATTERN_PATHS = {
    "url": "url:value",
    "domain": "domain-name:value",
    "ipv4": "ipv4-addr:value",
    "sender_ip": "ipv4-addr:value",
    "email": "email-addr:value",
    "sender_email": "email-message:from_ref.value",
    "subject": "email-message:subject",
    "md5": "file:hashes.MD5",
    "sha1": "file:hashes.'SHA-1'",
    "sha256": "file:hashes.'SHA-256'",
}
_EQUALS = {kind: f"[{target} = '" for kind, target in PATTERN_PATHS.items()}  # each pattern's start but a LIKE's


def pattern(kind: str, value: str) -> str | None:
    """The STIX pattern matching the canonical ``value`` of ``kind``, or None when none may be made."""
    if kind not in PATTERN_PATHS or not value or verdict(kind, value, keep_private_ips=True).value != value:
        return None
    return gated_pattern(kind, value)


def gated_pattern(kind: str, value: str) -> str | None:
    """:func:`pattern` for a value the gate gave (an indicator's): canonical already, so not checked again.

    The gate's canonical forms are fixed points (tests/test_indicators.py), so checking one
    again only repeats the gate's work; None for a kind no pattern covers.
    """
    start = _EQUALS.get(kind)
    if start is None:
        return None
    if kind == "domain" and value.startswith("*."):
        return f"[{PATTERN_PATHS[kind]} LIKE '%{quoted(like_literal(value[1:]))}']"
    if "\\" in value or "'" in value:
        value = quoted(value)
    return f"{start}{value}']"


def like_literal(text: str) -> str:
    """``text`` matched literally by LIKE: its ``\\``, ``%`` and ``_`` escaped with a backslash."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def quoted(text: str) -> str:
    """``text`` inside a STIX string literal: ``\\`` and ``'`` escaped."""
    return text.replace("\\", "\\\\").replace("'", "\\'")
