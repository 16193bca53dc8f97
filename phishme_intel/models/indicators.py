"""The indicator gate: which values are indicators, and the one form every adapter and lookup uses.

An indicator goes into firewalls, resolvers, proxies and watchlists, so a value that would
block nothing (``<redacted>@example.net``, ``*docs.example.net``) or block everything
(``*``, ``com``, ``0.0.0.0``) is not an indicator at all. Each kind has one validation and
one canonical form:

domain
    Re-fanged (``[.]``, ``(.)``), IDNA 2008 A-label (``xn--``) in lower case, LDH labels of
    1 to 63 characters, at most 253 characters, one trailing dot dropped, and at least one
    label below a public suffix of the Public Suffix List (so ``com``, ``co.uk`` and
    ``github.io`` are not indicators). A wildcard is kept only as ``*.`` followed by such a
    domain; a ``*`` anywhere else, ``<redacted>`` or another placeholder rejects the value.
url
    ``http``, ``https`` or ``ftp`` (``hxxp`` re-fanged), a host that passes the domain or
    IPv4 rules (no wildcard), written in A-label form; scheme and host in lower case, the
    rest of the URL (user, port, path, query, fragment) kept as the vendor sent it.
ipv4
    Dotted decimal as :mod:`ipaddress` writes it, public unicast only: 0/8, 127/8, link-local
    169.254/16, multicast 224/4, reserved 240/4 and broadcast are never indicators;
    the private ranges (RFC 1918 10/8, 172.16/12, 192.168/16 and CGNAT 100.64/10) only when
    a site keeps them (``keep_private_ips``). ``sender_ip`` follows the same rules.
email
    A local part (no blank, no control character, no placeholder) ``@`` a domain that passes
    the domain rules (no wildcard), all in lower case, the domain in A-label form; ``[at]``
    and ``[.]`` re-fanged. ``sender_email`` follows the same rules.
md5, sha1, sha256
    Hex digits of the hash's length, in lower case.
subject
    As sent (blanks around it dropped); never in a blocklist.

:func:`canonical` gives a value's canonical form or raises :class:`RejectedIndicator` with
one of :data:`REASONS`; :func:`candidates` turns a value an analyst pastes into the
``(kind, value)`` pairs a lookup should ask for. A value the vendor already wrote in its
canonical form (most are) is recognised by one regular expression of its kind (:func:`quick`);
the verdicts on the others are cached per value.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import NamedTuple

import idna
from publicsuffixlist import PSLFILE, encode_idn

KINDS = ("url", "domain", "ipv4", "email", "md5", "sha1", "sha256", "subject", "sender_ip", "sender_email")
HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
#: Why a value is not an indicator.
REASONS = {
    "empty": "nothing left once blanks are dropped",
    "control": "a control character or a blank inside the value",
    "placeholder": "a placeholder such as <redacted> stands for part of the value",
    "wildcard": "a * that is not a leading '*.' before a registrable domain",
    "public-suffix": "a public suffix (com, co.uk, github.io) or a name without one label below it",
    "syntax": "not of its kind (labels, digits, @, hex digits, length)",
    "too-long": "a label over 63 or a name over 253 characters",
    "scheme": "a URL whose scheme is not http, https or ftp",
    "private": "a private IPv4 address (RFC 1918, CGNAT); kept with keep_private_ips",
    "reserved": "an IPv4 address that is not unicast on the internet (0/8, loopback, link-local, multicast, "
                "reserved, broadcast)",
}
URL_SCHEMES = ("http", "https", "ftp")
_CACHE_SIZE = 4096  # verdicts kept: ~5 MiB fewer than 16,384 on W1 (bench/run.py), no more CPU
_REFANG = [
    (re.compile(r"^hxxp(s?)://", re.IGNORECASE), r"http\1://"),
    (re.compile(r"^fxp://", re.IGNORECASE), "ftp://"),
    (re.compile(r"\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)", re.IGNORECASE), "."),
    (re.compile(r"\[@\]|\(@\)|\[at\]|\(at\)", re.IGNORECASE), "@"),
    (re.compile(r"\[:\]"), ":"),
    (re.compile(r"\[://\]"), "://"),
]
_FANGED = re.compile(r"^hxxp|^fxp|[\[({]", re.IGNORECASE)  # what any of _REFANG needs to match
_PLACEHOLDER = re.compile(r"[<>]|redacted", re.IGNORECASE)
_LDH = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_AUTHORITY_END = re.compile(r"[/?#]")
#: Every label LDH, 1 to 63 characters, the last one not all digits: in one match.
_NAME = re.compile(rf"(?:{_LDH}\.)*(?![0-9]+$){_LDH}")
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_HEX = re.compile(r"[0-9a-f]+")
_PORT = re.compile(r"[0-9]{1,5}")
#: A URL's host, as :func:`_split_url` finds it when the scheme is in lower-case letters.
_URL_HOST = re.compile(r"[a-z]+://(?:[^/?#]*@)?([^:/?#]*)")
#: Two or more LDH labels in lower case, the last one not all digits (up to the end, or a URL's path).
_QUICK_NAME = rf"(?:{_LDH}\.)+(?![0-9]+(?:[/?#]|\Z)){_LDH}"
_QUICK_DOMAIN = re.compile(_QUICK_NAME)
_QUICK_EMAIL = re.compile(rf"[a-z0-9._%+-]{{1,64}}@({_QUICK_NAME})")
#: No user, no port; the path, query and fragment in printable ASCII, nothing :func:`_plain` would re-fang or reject.
_QUICK_URL = re.compile(rf"(?:https?|ftp)://({_QUICK_NAME})(?:[/?#][^\x00-\x20\x7f-\U0010ffff\[({{<>]*)?")


class RejectedIndicator(ValueError):
    """A value that is not an indicator of its kind; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, kind: str, value: str, reason: str) -> None:
        super().__init__(f"{kind} {value!r} is not an indicator: {REASONS[reason]}")
        self.kind = kind
        self.value = value
        self.reason = reason


class Verdict(NamedTuple):
    """The gate's answer for one value: its canonical form, or None and the reason it fails."""

    value: str | None
    reason: str | None = None


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def canonical(kind: str, value: str, *, keep_private_ips: bool = False) -> str:
    """The canonical form of ``value`` as an indicator of ``kind``.

    Raises RejectedIndicator when it is not one, ValueError when ``kind`` is not in :data:`KINDS`.
    """
    found = verdict(kind, value, keep_private_ips=keep_private_ips)
    if found.value is None:
        raise RejectedIndicator(kind, value, found.reason or "syntax")
    return found.value


def verdict(kind: str, value: str, *, keep_private_ips: bool = False) -> Verdict:
    """:func:`canonical` as a :class:`Verdict`, without an exception (:func:`quick`, else :func:`cached_verdict`)."""
    found = quick(kind, value)
    return cached_verdict(kind, value, keep_private_ips) if found is None else Verdict(found)


def quick(kind: str, value: str) -> str | None:
    """The canonical form of a value already written in it (plain lower-case ASCII, a hash, a public suffix's
    child), without the cache; None when the value needs :func:`cached_verdict` to tell (most values need not).

    Agrees with :func:`judge` wherever it gives a value, whatever ``keep_private_ips`` says.
    """
    check = QUICK.get(kind)
    return None if check is None else check(value)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def cached_verdict(kind: str, value: str, keep_private_ips: bool) -> Verdict:
    """:func:`verdict` with positional arguments, the form the sync calls on every value of every threat.

    Cached: the same domain or address recurs across threats and within one.
    """
    return judge(kind, value, keep_private_ips=keep_private_ips)


def judge(kind: str, value: str, *, keep_private_ips: bool = False) -> Verdict:
    """:func:`verdict` without its cache, for values seen once (the entries of an allow-list)."""
    check = _CHECKS.get(kind)
    if check is None:
        raise ValueError(f"unknown indicator kind {kind!r}; one of {', '.join(KINDS)}")
    text = value.strip()
    if not text:
        return Verdict(None, "empty")
    try:
        return Verdict(check(text, keep_private_ips))
    except _Rejected as rejected:
        return Verdict(None, rejected.reason)


def candidates(text: str, *, keep_private_ips: bool = True) -> list[tuple[str, str]]:
    """The ``(kind, canonical value)`` pairs a free-form value an analyst pastes may be.

    A hash is tried by its length, an address as IPv4, an ``@`` as e-mail, a URL as URL
    (without a scheme: as ``http`` and ``https`` URL) and as its host, anything else as domain.
    Private addresses are kept (an analyst may look one up). Empty when nothing fits.
    """
    value = _refang(text.strip())
    found: list[tuple[str, str]] = []

    def add(kind: str, raw: str) -> None:
        result = verdict(kind, raw, keep_private_ips=keep_private_ips)
        if result.value is not None and (kind, result.value) not in found:
            found.append((kind, result.value))

    for kind, length in HASH_LENGTHS.items():
        if len(value) == length:
            add(kind, value)
    add("ipv4", value)
    if "@" in value and "/" not in value:
        add("email", value)
    has_scheme = "://" in value
    if has_scheme or "/" in value:
        for url in [value] if has_scheme else [f"http://{value}", f"https://{value}"]:
            add("url", url)
        try:
            host = _split_url(value if has_scheme else f"http://{value}")[2]
        except _Rejected:
            return found
        add("ipv4" if _IPV4.fullmatch(host) else "domain", host)
    elif "@" not in value:
        add("domain", value)
    return found


def url_host(url: str) -> str:
    """The host of a canonical URL (a domain in A-label form or an IPv4 address)."""
    found = _URL_HOST.match(url)
    return found[1] if found else _split_url(url)[2]


def _refang(text: str) -> str:
    if not _FANGED.search(text):
        return text
    for pattern, replacement in _REFANG:
        text = pattern.sub(replacement, text)
    return text


def _plain(text: str) -> str:
    """``text`` re-fanged; rejected when it holds a control character, a blank or a placeholder."""
    if not text.isprintable() or " " in text:  # the one blank str.isprintable lets through
        raise _Rejected("control")
    text = _refang(text)
    if _PLACEHOLDER.search(text):
        raise _Rejected("placeholder")
    return text


def _domain(text: str, keep_private_ips: bool = False) -> str:
    return _name(_plain(text), wildcard=True)


def _name(text: str, wildcard: bool) -> str:
    """A domain name already through :func:`_plain`, canonical; ``*.`` kept in front when ``wildcard``."""
    prefix = ""
    if wildcard and text.startswith("*."):
        prefix, text = "*.", text[2:]
    if "*" in text:
        raise _Rejected("wildcard")
    name = _a_label(text[:-1] if text.endswith(".") else text)
    if _is_public_suffix(name):
        raise _Rejected("public-suffix")
    return prefix + name


def _a_label(text: str) -> str:
    """``text`` as IDNA 2008 A-labels in lower case, each label checked (LDH, 1..63), at most 253 characters."""
    if text.isascii():
        name = text.lower()
    else:
        try:
            name = idna.encode(text, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise _Rejected("syntax") from None
        except UnicodeError:
            raise _Rejected("too-long") from None
    if len(name) > 253 or not _NAME.fullmatch(name):
        labels = name.split(".")
        if len(name) > 253 or any(len(label) > 63 for label in labels):
            raise _Rejected("too-long")
        raise _Rejected("syntax")
    if "xn--" in name and not all(_valid_a_label(label) for label in name.split(".") if label.startswith("xn--")):
        raise _Rejected("syntax")
    return name


@functools.lru_cache(maxsize=4096)
def _valid_a_label(label: str) -> bool:
    try:
        return idna.encode(idna.decode(label)).decode("ascii") == label
    except (idna.IDNAError, UnicodeError):
        return False


def _ipv4(text: str, keep_private_ips: bool) -> str:
    return _address(_plain(text), keep_private_ips)


def _address(text: str, keep_private_ips: bool) -> str:
    """A dotted IPv4 address already through :func:`_plain`, checked against the ranges that are no indicators."""
    if not _IPV4.fullmatch(text):
        raise _Rejected("syntax")
    first, second, _, _ = map(int, text.split("."))
    if first in (0, 127) or first >= 224 or (first, second) == (169, 254):
        raise _Rejected("reserved")  # 0/8, loopback, multicast, 240/4 and broadcast, link-local
    if not keep_private_ips and (first == 10 or (first, second) == (192, 168) or (first == 172 and 16 <= second < 32)
                                 or (first == 100 and 64 <= second < 128)):
        raise _Rejected("private")  # RFC 1918, CGNAT 100.64/10
    return text


def _email(text: str, keep_private_ips: bool) -> str:
    text = _plain(text)
    local, at, domain = text.rpartition("@")
    if not at or not local or len(local) > 64 or "@" in local:
        raise _Rejected("syntax")
    return f"{local.lower()}@{_name(domain, wildcard=False)}"


def _url(text: str, keep_private_ips: bool) -> str:
    text = _plain(text)
    scheme, user, host, port, rest = _split_url(text)
    if scheme.lower() not in URL_SCHEMES:
        raise _Rejected("scheme")
    if not host or (port and not (_PORT.fullmatch(port) and int(port) <= 65535)):
        raise _Rejected("syntax")
    host = _address(host, keep_private_ips) if _IPV4.fullmatch(host) else _name(host, wildcard=False)
    return f"{scheme.lower()}://{user}{host}{':' if port else ''}{port}{rest}"


def _split_url(text: str) -> tuple[str, str, str, str, str]:
    """``scheme``, ``user@`` (or empty), host, port (or empty) and the rest of a URL, as written."""
    scheme, separator, after = text.partition("://")
    if not separator or not scheme.isalpha():
        raise _Rejected("scheme")
    found = _AUTHORITY_END.search(after)
    end = found.start() if found else len(after)
    authority, rest = after[:end], after[end:]
    user, at, host_port = authority.rpartition("@")
    if host_port.startswith("["):
        raise _Rejected("syntax")  # an IPv6 literal: not an indicator kind here
    host, colon, port = host_port.partition(":")
    if colon and not port:
        raise _Rejected("syntax")
    return scheme, user + at, host, port, rest


def _hash(length: int) -> Callable[[str, bool], str]:
    def check(text: str, keep_private_ips: bool) -> str:
        text = text.lower()
        if len(text) != length or not _HEX.fullmatch(text):
            raise _Rejected("syntax")
        return text

    return check


def _subject(text: str, keep_private_ips: bool) -> str:
    return text


def _quick_domain(value: str) -> str | None:
    if (_QUICK_DOMAIN.fullmatch(value) and len(value) <= 253 and "xn--" not in value and "redacted" not in value
            and not _is_public_suffix(value)):
        return value
    return None


def _quick_email(value: str) -> str | None:
    if not value.isascii():
        return None
    value = value.lower()
    found = _QUICK_EMAIL.fullmatch(value)
    if found and len(name := found[1]) <= 253 and "xn--" not in name and "redacted" not in value \
            and not _is_public_suffix(name):
        return value
    return None


def _quick_url(value: str) -> str | None:
    found = _QUICK_URL.fullmatch(value)
    if (found and len(host := found[1]) <= 253 and "xn--" not in host and "redacted" not in value.lower()
            and not _is_public_suffix(host)):
        return value
    return None


def _quick_hash(length: int) -> Callable[[str], str | None]:
    matches = re.compile(f"[0-9a-f]{{{length}}}").fullmatch

    def check(value: str) -> str | None:
        return value if matches(value) else None

    return check


def _quick_subject(value: str) -> str | None:
    return value.strip() or None


#: Per kind, :func:`quick`'s check: the value's canonical form when it is plainly written in it, else None.
QUICK: dict[str, Callable[[str], str | None]] = {
    "url": _quick_url, "domain": _quick_domain, "email": _quick_email, "sender_email": _quick_email,
    "subject": _quick_subject, **{kind: _quick_hash(length) for kind, length in HASH_LENGTHS.items()},
}


_CHECKS = {
    "url": _url, "domain": _domain, "ipv4": _ipv4, "sender_ip": _ipv4, "email": _email, "sender_email": _email,
    "subject": _subject, **{kind: _hash(length) for kind, length in HASH_LENGTHS.items()},
}


def _is_public_suffix(name: str) -> bool:
    """Whether the canonical ``name`` is a public suffix (no label below one): the PSL's rules, in set lookups.

    As the ``publicsuffixlist`` package reads them: an unknown single label is a suffix, a
    wildcard rule ``*.x`` makes ``x`` and ``y.x`` suffixes unless an exception ``!y.x`` says not.
    """
    if "." not in name:
        return True
    suffixes, wildcard_parents, exceptions = _suffixes()
    return name in suffixes or (name.partition(".")[2] in wildcard_parents and name not in exceptions)


class _Suffixes(NamedTuple):
    """The PSL's rules as sets of names: suffixes by a rule of their own, names with a wildcard rule below them,
    exceptions."""

    suffixes: frozenset[str]
    wildcard_parents: frozenset[str]
    exceptions: frozenset[str]


def load_public_suffixes() -> None:
    """Read the Public Suffix List now rather than at the first domain judged (40-80 ms: see
    :class:`~phishme_intel.sync.engine.Engine`); it is read once per process either way."""
    _suffixes()


@functools.cache
def _suffixes() -> _Suffixes:
    rules = _rules()
    exceptions = frozenset(rule[1:] for rule in rules if rule.startswith("!"))
    wildcard_parents = frozenset(rule[2:] for rule in rules if rule.startswith("*."))
    named = {rule for rule in rules if not rule.startswith(("!", "*."))}
    return _Suffixes(frozenset((named | wildcard_parents) - exceptions), wildcard_parents, exceptions)


def _rules() -> frozenset[str]:
    """The Public Suffix List's rules as ``publicsuffixlist`` ships them, IDN rules in A-label form too (read anew)."""
    rules = set()
    with open(PSLFILE, encoding="utf-8") as handle:
        for line in handle:
            rule = line.split(" ", 1)[0].strip().lower()
            if rule and not rule.startswith("//"):
                rules.add(rule)
                if not rule.isascii():
                    bang = "!" if rule.startswith("!") else ""
                    rules.add(bang + encode_idn(rule.lstrip("!")))
    return frozenset(rules)
