"""Allow-listing: values that pass the gate but that no adapter may emit.

allowlist
    Known-benign values a site never wants blocked: a domain covers itself, its
    subdomains and the URLs and e-mail addresses on them; an IPv4 address or CIDR block
    covers the addresses in it (and URLs on them); a hash, URL or e-mail address covers
    exactly itself. Allow-listed indicators stay in the store (a lookup finds them) but no
    adapter emits them.

The entries come from ``[indicators] allowlist_file`` (one per line, ``#`` comments) and
from MISP warning lists (:func:`warninglist_entries`, the optional ``pymispwarninglists``
package). Every entry goes through the gate first, so an entry is compared in its
canonical form and a public suffix (``com``) can never allow-list everything.
"""

from __future__ import annotations

import bisect
import importlib.util
import json
import re
import socket
from collections.abc import Iterable
from pathlib import Path

from .indicators import HASH_LENGTHS, judge, url_host

#: The MISP warning lists used when ``warninglists = True`` names none: the top sites,
#: public DNS resolvers, the big CDNs and clouds, and the hashes of empty files.
DEFAULT_WARNINGLISTS = (
    "tranco10k", "google", "microsoft", "public-dns-v4", "cloudflare", "akamai", "fastly",
    "amazon-aws", "google-gcp", "microsoft-azure", "empty-hashes",
)
_SITE_KINDS = {"domain", "url", "email", "sender_email"}
_ADDRESS = re.compile(r"[0-9.]+(?:/[0-9]{1,2})?")
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


class Allowlist:
    """A set of allow-list entries; :meth:`covers` says whether one indicator is allow-listed."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.domains: set[str] = set()
        self.exact: set[str] = set()
        self._networks: dict[int, set[int]] = {}
        self._ranges: tuple[list[int], list[int]] | None = None
        self.rejected: list[str] = []
        for entry in entries:
            if not self.add(entry):
                self.rejected.append(entry)

    def __bool__(self) -> bool:
        return bool(self.domains or self.exact or self._networks)

    def __len__(self) -> int:
        return len(self.domains) + len(self.exact) + sum(len(nets) for nets in self._networks.values())

    def add(self, entry: str) -> bool:
        """Add one entry; False when it is none of a domain, IPv4 address or block, hash, URL or e-mail address."""
        text = entry.strip()
        if text.startswith(("*.", ".")):
            return self._add_domain(text.lstrip("*."))
        if _ADDRESS.fullmatch(text):
            return self._add_network(text)
        for kind, length in HASH_LENGTHS.items():
            if len(text) == length and (value := judge(kind, text).value):
                self.exact.add(value)
                return True
        if "://" in text or "@" in text:
            value = judge("url" if "://" in text else "email", text, keep_private_ips=True).value
            if value:
                self.exact.add(value)
            return value is not None
        return self._add_domain(text)

    def _add_network(self, text: str) -> bool:
        address, _, length = text.partition("/")
        try:
            number = int.from_bytes(socket.inet_aton(address), "big") if _IPV4.fullmatch(address) else -1
            bits = int(length) if length else 32
        except (OSError, ValueError):
            return False
        if number < 0 or not 0 <= bits <= 32:
            return False
        self._networks.setdefault(bits, set()).add(number >> (32 - bits))
        self._ranges = None
        return True

    def _add_domain(self, text: str) -> bool:
        value = judge("domain", text).value
        if value is None or value.startswith("*."):
            return False
        self.domains.add(value)
        return True

    def covers(self, kind: str, value: str) -> bool:
        """Whether the canonical indicator ``value`` of ``kind`` is allow-listed."""
        if value in self.exact:
            return True
        if kind in ("ipv4", "sender_ip"):
            return self._has_address(value)
        if kind not in _SITE_KINDS:
            return False
        host = url_host(value) if kind == "url" else value.rpartition("@")[2]
        if kind == "url" and host[-1].isdigit():
            return self._has_address(host)
        return self._has_domain(host)

    def _has_domain(self, host: str) -> bool:
        name = host.removeprefix("*.")
        while name:
            if name in self.domains:
                return True
            name = name.partition(".")[2]
        return False

    def _has_address(self, address: str) -> bool:
        if not self._networks:
            return False
        starts, ends = self._ranges or self._merge_networks()
        number = int.from_bytes(socket.inet_aton(address), "big")
        at = bisect.bisect_right(starts, number) - 1
        return at >= 0 and number < ends[at]

    def _merge_networks(self) -> tuple[list[int], list[int]]:
        """The blocks as sorted ranges of addresses (first, after last) that neither overlap nor touch."""
        starts: list[int] = []
        ends: list[int] = []
        blocks = sorted((prefix << (32 - bits), (prefix + 1) << (32 - bits))
                        for bits, prefixes in self._networks.items() for prefix in prefixes)
        for start, end in blocks:
            if ends and start <= ends[-1]:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        self._ranges = starts, ends
        return self._ranges


def file_entries(path: str) -> list[tuple[int, str]]:
    """The entries of an allow-list file with their line numbers: blank lines and ``#`` comments left out.

    Raises OSError when the file cannot be read, UnicodeDecodeError when it is not UTF-8.
    """
    with open(path, encoding="utf-8-sig") as handle:
        lines = handle.read().splitlines()
    found = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if text:
            found.append((number, text))
    return found


def warninglists_folder() -> Path:
    """Where the installed ``pymispwarninglists`` keeps its lists (found, not imported: its import is slow).

    Raises ImportError when the package is not installed.
    """
    spec = importlib.util.find_spec("pymispwarninglists")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the MISP warning lists need the pymispwarninglists package: "
                          "pip install 'phishme-intel[warninglists]'")
    return Path(spec.submodule_search_locations[0]) / "data" / "misp-warninglists" / "lists"


def warninglist_entries(names: Iterable[str]) -> list[str]:
    """The entries of the named MISP warning lists (those of type ``cidr``, ``hostname`` and ``string``).

    Raises ImportError without ``pymispwarninglists``, OSError or ValueError for a list
    that is missing or unreadable.
    """
    folder = warninglists_folder()
    entries: list[str] = []
    for name in names:
        with open(folder / name / "list.json", encoding="utf-8") as handle:
            warninglist = json.load(handle)
        if warninglist.get("type") in ("cidr", "hostname", "string"):
            entries.extend(str(value) for value in warninglist["list"])
    return entries
