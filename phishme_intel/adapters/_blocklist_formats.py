"""The files enforcement points load, built from the blocklists' domain and IPv4 entries.

Each format is one or two files in the blocklists folder, written by
:class:`~phishme_intel.adapters.blocklists.BlocklistsAdapter` (atomically, only when the
content changed). Domains are canonical (A-labels, lower case); a listed domain blocks its
subdomains too. A wildcard ``*.example.com`` blocks the subdomains only where the format
can say so (RPZ); Unbound and Squid cannot, and block the domain and its subdomains.

``rpz``
    ``phishme_intel.rpz``, a Response Policy Zone (BIND 9, Knot Resolver, PowerDNS
    Recursor): ``name CNAME .`` (NXDOMAIN) for each domain and ``*.name``, with an SOA
    whose serial grows at each change. Names too long to sit under the zone's origin are
    left out.
``unbound``
    ``unbound-local-zones.conf``: ``local-zone: "name." always_nxdomain`` per domain (the
    file starts with ``server:``, so it may be included anywhere in unbound.conf).
``nftables``
    ``ipv4.nft``: the set ``blocklist_ipv4`` of the table ``inet phishme_intel``, created if
    missing and flushed and filled in one transaction (``nft -f``).
``ipset``
    ``ipv4.ipset`` for ``ipset restore``: fills ``phishme_intel_ipv4_new`` and swaps it with
    ``phishme_intel_ipv4`` (both created if missing), so the live set changes at once.
``squid``
    ``squid-dstdomain.acl`` (``.name`` per domain, no name under another listed one) and
    ``squid-dst.acl`` (one address per line), for ``acl ... dstdomain "file"`` and
    ``acl ... dst "file"``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence

FORMATS = ("plain", "rpz", "unbound", "nftables", "ipset", "squid")
RPZ_ORIGIN = "rpz.phishme-intel"
NFT_TABLE = "inet phishme_intel"
NFT_SET = "blocklist_ipv4"
IPSET = "phishme_intel_ipv4"
_MAX_NAME = 253
_SERIAL = re.compile(rb"SOA \S+ \S+ \((\d+) ")
_PER_LINE = 500
_RPZ_LAST_HEAD_LINE = b"@ NS localhost.\n"
#: Lines per piece of a file given as pieces (of names or addresses: about 30-150 KB).
_LINES = 2048
#: Lines of ``add element`` per piece of the nftables script (of 500 addresses each).
_PER_PIECE = 8


def formats(raw: str) -> tuple[str, ...]:
    """A comma-separated list of blocklist formats, without repeats."""
    found = [word.strip().lower() for word in raw.split(",") if word.strip()]
    unknown = [word for word in found if word not in FORMATS]
    if unknown or not found:
        raise ValueError(f"must be a comma-separated list of {', '.join(FORMATS)}, not {raw!r}")
    return tuple(dict.fromkeys(found))


def files(fmt: str, domains: Sequence[str], addresses: Sequence[str],
          previous: Callable[[str], bytes | None], widest: Widest | None = None) -> dict[str, Iterator[bytes]]:
    """The files of ``fmt`` (not ``plain``) for sorted canonical ``domains`` and ``addresses``, by file name.

    Each file comes in pieces of at most :data:`_LINES` lines, made as they are asked for (never a
    whole file's text at once, but the RPZ's). ``previous(name)`` is the file's current content
    (None when there is none): the RPZ keeps its serial when nothing else changed. ``widest``: the
    :class:`Widest` of ``domains``, for formats made together to share.
    """
    widest = widest or Widest(domains)
    if fmt == "rpz":
        return {"phishme_intel.rpz": iter([_rpz(widest, previous("phishme_intel.rpz"))])}
    if fmt == "unbound":
        return {"unbound-local-zones.conf": _unbound(widest)}
    if fmt == "nftables":
        return {"ipv4.nft": _nftables(addresses)}
    if fmt == "ipset":
        return {"ipv4.ipset": _ipset(addresses)}
    if fmt == "squid":
        return {"squid-dstdomain.acl": _lines(".", "\n", widest.names(keep_wildcards=False)),
                "squid-dst.acl": _lines("", "\n", addresses)}
    raise ValueError(f"unknown blocklist format {fmt!r}")


class Widest:
    """The sorted ``domains`` without those a listed domain covers (:func:`_widest`), made once for each
    ``keep_wildcards`` (once for both when no domain is a wildcard)."""

    def __init__(self, domains: Sequence[str]) -> None:
        self._domains = domains
        self._made: dict[bool, list[str]] = {}
        self._wildcards: bool | None = None

    @property
    def wildcards(self) -> bool:
        """Whether a domain is a wildcard (``*.name``)."""
        if self._wildcards is None:
            self._wildcards = any(name.startswith("*.") for name in self._domains)
        return self._wildcards

    def names(self, keep_wildcards: bool) -> list[str]:
        keep_wildcards = keep_wildcards and self.wildcards
        if keep_wildcards not in self._made:
            self._made[keep_wildcards] = _widest(self._domains, keep_wildcards)
        return self._made[keep_wildcards]


def rpz(domains: Sequence[str], previous: bytes | None = None) -> bytes:
    """The RPZ zone file; its serial stays that of ``previous`` when the records are the same, else grows."""
    return _rpz(Widest(domains), previous)


def _rpz(widest: Widest, previous: bytes | None) -> bytes:
    body = b"".join(_rpz_records(widest.names(keep_wildcards=True), widest.wildcards))
    old_serial = 0
    if previous is not None and (found := _SERIAL.search(previous)):
        old_serial = int(found.group(1))
        if previous.endswith(body) and previous.endswith(_RPZ_LAST_HEAD_LINE, 0, len(previous) - len(body)):
            return previous
    serial = max(old_serial + 1, int(time.time())) % 2**32
    head = (f"; phishme-intel Response Policy Zone: NXDOMAIN for each listed domain and its subdomains\n"
            f"$TTL 300\n@ SOA localhost. hostmaster.localhost. ({serial} 3600 600 86400 300)\n@ NS localhost.\n")
    return head.encode() + body


def _rpz_records(names: Sequence[str], wildcards: bool) -> Iterator[bytes]:
    """``owner CNAME .`` for each name and ``*.name`` (a wildcard only for itself), of the owners short
    enough; ``wildcards``: whether a name may be a wildcard."""
    fits = _MAX_NAME - 1 - len(RPZ_ORIGIN)
    for start in range(0, len(names), _LINES):
        some = names[start:start + _LINES]
        if not wildcards and max(map(len, some)) + 2 <= fits:  # every name and its wildcard
            yield "".join([f"{name} CNAME .\n*.{name} CNAME .\n" for name in some]).encode()
            continue
        owners = [owner for name in some
                  for owner in ((name,) if name.startswith("*.") else (name, f"*.{name}")) if len(owner) <= fits]
        yield from _lines("", " CNAME .\n", owners)


def unbound(domains: Sequence[str]) -> bytes:
    """The Unbound include: one ``always_nxdomain`` local zone per domain, covering its subdomains."""
    return b"".join(_unbound(Widest(domains)))


def _unbound(widest: Widest) -> Iterator[bytes]:
    yield b"# phishme-intel blocklist for Unbound: include it in unbound.conf\nserver:\n"
    yield from _lines('    local-zone: "', '." always_nxdomain\n', widest.names(keep_wildcards=False))


def nftables(addresses: Sequence[str]) -> bytes:
    """The nftables script: the set created if missing, then emptied and filled in the same transaction."""
    return b"".join(_nftables(addresses))


def _nftables(addresses: Sequence[str]) -> Iterator[bytes]:
    yield (f"# phishme-intel IPv4 blocklist for nftables: nft -f this file (one transaction)\n"
           f"add table {NFT_TABLE}\nadd set {NFT_TABLE} {NFT_SET} {{ type ipv4_addr; }}\n"
           f"flush set {NFT_TABLE} {NFT_SET}\n").encode()
    lines = [f"add element {NFT_TABLE} {NFT_SET} {{ {', '.join(addresses[start:start + _PER_LINE])} }}\n"
             for start in range(0, len(addresses), _PER_LINE)]
    for start in range(0, len(lines), _PER_PIECE):
        yield "".join(lines[start:start + _PER_PIECE]).encode()


def ipset(addresses: Sequence[str]) -> bytes:
    """The ``ipset restore`` file: a new set filled, then swapped with the live one and destroyed."""
    return b"".join(_ipset(addresses))


def _ipset(addresses: Sequence[str]) -> Iterator[bytes]:
    create = "hash:ip family inet maxelem 1048576 -exist"
    yield f"create {IPSET} {create}\ncreate {IPSET}_new {create}\nflush {IPSET}_new\n".encode()
    yield from _lines(f"add {IPSET}_new ", "\n", addresses)
    yield f"swap {IPSET}_new {IPSET}\ndestroy {IPSET}_new\n".encode()


def squid_dstdomain(domains: Sequence[str]) -> bytes:
    """Squid's ``dstdomain`` list: ``.name`` (the domain and its subdomains), none under another."""
    return b"".join(_lines(".", "\n", Widest(domains).names(keep_wildcards=False)))


def _lines(before: str, after: str, items: Sequence[str]) -> Iterator[bytes]:
    """A line ``before + item + after`` for each of ``items``, encoded in pieces of :data:`_LINES` lines
    (each joined at once: a line's text is not made alone)."""
    glue = after + before
    for start in range(0, len(items), _LINES):
        yield (before + glue.join(items[start:start + _LINES]) + after).encode()


def _widest(domains: Sequence[str], keep_wildcards: bool = False) -> list[str]:
    """The domains without those a listed domain covers, sorted; ``*.name`` as ``name`` unless kept."""
    names = {name if keep_wildcards else name.removeprefix("*.") for name in domains}
    # without wildcards kept, no name is left starting with "*.": the gate allows none after the first
    plain = {name for name in names if not name.startswith("*.")} if keep_wildcards else names
    widest = []
    for name in sorted(names):
        parent = name.partition(".")[2]  # of *.name: name
        if keep_wildcards and name.startswith("*."):
            if parent in plain:
                continue  # the domain's own entry already covers its subdomains
            parent = parent.partition(".")[2]
        while parent and parent not in plain:
            parent = parent.partition(".")[2]
        if not parent:
            widest.append(name)
    return widest
