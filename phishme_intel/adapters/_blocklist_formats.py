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
from collections.abc import Callable, Iterable, Iterator, Sequence

FORMATS = ("plain", "rpz", "unbound", "nftables", "ipset", "squid")
RPZ_ORIGIN = "rpz.phishme-intel"
NFT_TABLE = "inet phishme_intel"
NFT_SET = "blocklist_ipv4"
IPSET = "phishme_intel_ipv4"
_MAX_NAME = 253
_SERIAL = re.compile(rb"SOA \S+ \S+ \((\d+) ")
_PER_LINE = 500
_RPZ_LAST_HEAD_LINE = b"@ NS localhost.\n"
_CHUNK = 65536  # characters of text per piece of a file given as pieces


def formats(raw: str) -> tuple[str, ...]:
    """A comma-separated list of blocklist formats, without repeats."""
    found = [word.strip().lower() for word in raw.split(",") if word.strip()]
    unknown = [word for word in found if word not in FORMATS]
    if unknown or not found:
        raise ValueError(f"must be a comma-separated list of {', '.join(FORMATS)}, not {raw!r}")
    return tuple(dict.fromkeys(found))


def files(fmt: str, domains: Sequence[str], addresses: Sequence[str],
          previous: Callable[[str], bytes | None]) -> dict[str, Iterator[bytes]]:
    """The files of ``fmt`` (not ``plain``) for sorted canonical ``domains`` and ``addresses``, by file name.

    Each file comes in pieces of about 64 KiB, made as they are asked for (never a whole
    file's text at once, but the RPZ's). ``previous(name)`` is the file's current content
    (None when there is none): the RPZ keeps its serial when nothing else changed.
    """
    if fmt == "rpz":
        return {"phishme_intel.rpz": iter([rpz(domains, previous("phishme_intel.rpz"))])}
    if fmt == "unbound":
        return {"unbound-local-zones.conf": _pieces(_unbound_lines(domains))}
    if fmt == "nftables":
        return {"ipv4.nft": _pieces(_nftables_lines(addresses))}
    if fmt == "ipset":
        return {"ipv4.ipset": _pieces(_ipset_lines(addresses))}
    if fmt == "squid":
        return {"squid-dstdomain.acl": _pieces(f".{name}\n" for name in _widest(domains)),
                "squid-dst.acl": _pieces(f"{address}\n" for address in addresses)}
    raise ValueError(f"unknown blocklist format {fmt!r}")


def rpz(domains: Sequence[str], previous: bytes | None = None) -> bytes:
    """The RPZ zone file; its serial stays that of ``previous`` when the records are the same, else grows."""
    body = b"".join(_pieces(_rpz_records(domains)))
    old_serial = 0
    if previous is not None and (found := _SERIAL.search(previous)):
        old_serial = int(found.group(1))
        if previous.endswith(body) and previous.endswith(_RPZ_LAST_HEAD_LINE, 0, len(previous) - len(body)):
            return previous
    serial = max(old_serial + 1, int(time.time())) % 2**32
    head = (f"; phishme-intel Response Policy Zone: NXDOMAIN for each listed domain and its subdomains\n"
            f"$TTL 300\n@ SOA localhost. hostmaster.localhost. ({serial} 3600 600 86400 300)\n@ NS localhost.\n")
    return head.encode() + body


def _rpz_records(domains: Sequence[str]) -> Iterator[str]:
    for name in _widest(domains, keep_wildcards=True):
        for owner in [name] if name.startswith("*.") else [name, f"*.{name}"]:
            if len(owner) + 1 + len(RPZ_ORIGIN) <= _MAX_NAME:
                yield f"{owner} CNAME .\n"


def unbound(domains: Sequence[str]) -> bytes:
    """The Unbound include: one ``always_nxdomain`` local zone per domain, covering its subdomains."""
    return b"".join(_pieces(_unbound_lines(domains)))


def nftables(addresses: Sequence[str]) -> bytes:
    """The nftables script: the set created if missing, then emptied and filled in the same transaction."""
    return b"".join(_pieces(_nftables_lines(addresses)))


def ipset(addresses: Sequence[str]) -> bytes:
    """The ``ipset restore`` file: a new set filled, then swapped with the live one and destroyed."""
    return b"".join(_pieces(_ipset_lines(addresses)))


def squid_dstdomain(domains: Sequence[str]) -> bytes:
    """Squid's ``dstdomain`` list: ``.name`` (the domain and its subdomains), none under another."""
    return b"".join(_pieces(f".{name}\n" for name in _widest(domains)))


def _unbound_lines(domains: Sequence[str]) -> Iterator[str]:
    yield "# phishme-intel blocklist for Unbound: include it in unbound.conf\nserver:\n"
    for name in _widest(domains):
        yield f'    local-zone: "{name}." always_nxdomain\n'


def _nftables_lines(addresses: Sequence[str]) -> Iterator[str]:
    yield "# phishme-intel IPv4 blocklist for nftables: nft -f this file (one transaction)\n"
    yield f"add table {NFT_TABLE}\nadd set {NFT_TABLE} {NFT_SET} {{ type ipv4_addr; }}\n"
    yield f"flush set {NFT_TABLE} {NFT_SET}\n"
    for start in range(0, len(addresses), _PER_LINE):
        yield f"add element {NFT_TABLE} {NFT_SET} {{ {', '.join(addresses[start:start + _PER_LINE])} }}\n"


def _ipset_lines(addresses: Sequence[str]) -> Iterator[str]:
    create = "hash:ip family inet maxelem 1048576 -exist"
    yield f"create {IPSET} {create}\ncreate {IPSET}_new {create}\nflush {IPSET}_new\n"
    for address in addresses:
        yield f"add {IPSET}_new {address}\n"
    yield f"swap {IPSET}_new {IPSET}\ndestroy {IPSET}_new\n"


def _pieces(lines: Iterable[str]) -> Iterator[bytes]:
    """``lines`` joined and encoded in pieces of about :data:`_CHUNK` characters."""
    piece: list[str] = []
    size = 0
    for line in lines:
        piece.append(line)
        size += len(line)
        if size >= _CHUNK:
            yield "".join(piece).encode()
            piece, size = [], 0
    if piece:
        yield "".join(piece).encode()


def _widest(domains: Sequence[str], keep_wildcards: bool = False) -> Iterator[str]:
    """The domains without those a listed domain covers, sorted; ``*.name`` as ``name`` unless kept."""
    names = {name if keep_wildcards else name.removeprefix("*.") for name in domains}
    # without wildcards kept, no name is left starting with "*.": the gate allows none after the first
    plain = {name for name in names if not name.startswith("*.")} if keep_wildcards else names
    for name in sorted(names):
        parent = name.removeprefix("*.")
        if name.startswith("*.") and parent in plain:
            continue  # the domain's own entry already covers its subdomains
        parent = parent.partition(".")[2]
        while parent and parent not in plain:
            parent = parent.partition(".")[2]
        if not parent:
            yield name
